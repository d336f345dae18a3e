//! Feedback reports and the triage workflow (DESIGN §8).
