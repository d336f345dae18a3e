#!/bin/bash
# The first process of a local endpoint instance.
#
# Started by the local backend as
#   nsenter --net=/run/netns/NETNS unshare --mount --pid --uts --ipc --fork endpoint-init.sh
# so it already sits in the endpoint's network namespace and in fresh mount, PID, UTS and IPC
# namespaces. It builds a private copy-on-write view of the host's root filesystem, masks the
# host's private data, moves into that view with pivot_root (the host tree is then gone, not
# merely hidden as with chroot), creates the image's user, starts the daemons, and stays as
# PID 1 reaping orphans. Killing it kills every process of the endpoint (PID namespace), and
# the kernel drops its mounts with the mount namespace: nothing is left on the host but the
# state directory, which the backend removes.
#
# Input (environment, set by the backend):
#   AD_DIR            state directory of this instance (upper/, work/, root/ are created in it)
#   AD_HOSTNAME       host name (the endpoint name)
#   AD_KIND           linux | frr
#   AD_SSH_USER       user to create (or root) and its password AD_SSH_PASSWORD
#   AD_LESSON_DIR     lesson directory, copied to /antidote
#   AD_MASKS          colon-separated host paths replaced by empty directories
#   AD_FORWARDING     1 to route between interfaces
#   AD_HOSTS          extra /etc/hosts lines
#   AD_DAEMONS        FRR daemons to start (frr kind; default zebra staticd ospfd bgpd)
#   AD_SERVICES       newline-separated command lines started at boot as AD_SSH_USER, confined
# Output: AD_DIR/init.pid (this process's host PID) at once; /run/antidote-ready inside the
# endpoint once sshd and the daemons run (the backend reads it through /proc/<pid>/root); on failure a last line `endpoint-init: <reason>` on
# stderr, which the backend keeps in AD_DIR/init.log, and exit status 1.
set -euo pipefail

fail() {
    printf 'endpoint-init: %s\n' "$*" >&2
    exit 1
}
trap 'fail "line $LINENO: command failed: $BASH_COMMAND"' ERR

# Our PID as the host sees it (this /proc is still the host's), so the backend finds us
# without scanning the process table.
read -r host_pid _ </proc/self/stat
echo "$host_pid" >"$AD_DIR/init.pid"

ROOT=$AD_DIR/root
mkdir -p "$AD_DIR/upper" "$AD_DIR/work" "$ROOT"
mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=/,upperdir=$AD_DIR/upper,workdir=$AD_DIR/work" "$ROOT"

# Fresh kernel and scratch file systems; the host's /proc, /sys, /dev, /run, /tmp are not
# part of the overlay (they are separate mounts on the host).
mount -t proc -o nosuid,nodev,noexec proc "$ROOT/proc"
# Kernel-wide settings stay out of reach: /proc/sys is read-only except the network part,
# which belongs to the endpoint's own network namespace (ip_forward, rp_filter, ...).
mount --bind "$ROOT/proc/sys" "$ROOT/proc/sys"
mount --bind "$ROOT/proc/sys/net" "$ROOT/proc/sys/net"
mount -o remount,bind,ro "$ROOT/proc/sys"
if [ -e "$ROOT/proc/sysrq-trigger" ]; then mount --bind /dev/null "$ROOT/proc/sysrq-trigger"; fi
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$ROOT/sys"
mount -t tmpfs -o nosuid,nodev,mode=755,size=64m tmpfs "$ROOT/run"
mount -t tmpfs -o nosuid,nodev,mode=1777,size=256m tmpfs "$ROOT/tmp"
mount -t tmpfs -o nosuid,nodev,mode=755,size=1m tmpfs "$ROOT/dev"
for d in null zero full random urandom tty; do
    touch "$ROOT/dev/$d"
    mount --bind "/dev/$d" "$ROOT/dev/$d"
done
mkdir -p "$ROOT/dev/pts" "$ROOT/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$ROOT/dev/pts"
ln -s pts/ptmx "$ROOT/dev/ptmx"
mount -t tmpfs -o nosuid,nodev,size=64m tmpfs "$ROOT/dev/shm"
ln -s /proc/self/fd "$ROOT/dev/fd"

# The host's private data: replaced by empty directories. Besides what the backend names,
# every top-level directory that is not part of a Linux system (/work, /opt, /srv, /mnt, ...)
# and the data directories of common services.
IFS=: read -r -a masks <<<"${AD_MASKS:-}"
for top in "$ROOT"/*; do
    name=${top##*/}
    case "$name" in
        bin | boot | dev | etc | lib | lib32 | lib64 | libx32 | proc | run | sbin | sys | tmp | usr | var) ;;
        *) [ -d "$top" ] && [ ! -L "$top" ] && masks+=("/$name") ;;
    esac
done
for m in /root /home /var/log /var/mail /var/spool /var/backups /var/lib/postgresql \
    /var/lib/mysql /var/lib/docker /var/lib/clickhouse /etc/ssl/private "${masks[@]}"; do
    [ -n "$m" ] && [ -d "$ROOT$m" ] || continue
    mount -t tmpfs -o nosuid,nodev,mode=755,size=256m tmpfs "$ROOT$m"
done
chmod 700 "$ROOT/root"
# The host's SSH host keys and password hashes stay the host's.
rm -f "$ROOT"/etc/ssh/ssh_host_*
sed -i -E 's/^([^:]+):[^:]*:/\1:*:/' "$ROOT/etc/shadow"
[ -f "$ROOT/etc/gshadow" ] && sed -i -E 's/^([^:]+):[^:]*:/\1:*:/' "$ROOT/etc/gshadow"

# The lesson's files, as in NRE Labs: a private, writable copy at /antidote.
mkdir -p "$ROOT/antidote"
if [ -n "${AD_LESSON_DIR:-}" ]; then
    cp -a "$AD_LESSON_DIR/." "$ROOT/antidote/"
fi

hostname "$AD_HOSTNAME"
echo "$AD_HOSTNAME" >"$ROOT/etc/hostname"
{
    echo "127.0.0.1 localhost"
    echo "127.0.1.1 $AD_HOSTNAME"
    echo "::1 localhost ip6-localhost ip6-loopback"
    printf '%s\n' "${AD_HOSTS:-}"
} >"$ROOT/etc/hosts"

# Leave the host's tree for good.
cd "$ROOT"
mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root

ip link set lo up
sysctl -q -w "net.ipv4.ip_forward=${AD_FORWARDING:-0}" >/dev/null

# The image's user, with sudo. SHA-512 rather than Debian's default yescrypt: these are
# published lab passwords, and yescrypt's deliberate slowness (paid again at every SSH login)
# dominated start-up when many endpoints boot at once.
if [ "$AD_SSH_USER" = root ]; then
    echo "root:$AD_SSH_PASSWORD" | chpasswd -c SHA512
else
    useradd --create-home --shell /bin/bash "$AD_SSH_USER"
    echo "$AD_SSH_USER:$AD_SSH_PASSWORD" | chpasswd -c SHA512
    echo "$AD_SSH_USER ALL=(ALL) NOPASSWD: ALL" >"/etc/sudoers.d/antidote-$AD_SSH_USER"
    chmod 440 "/etc/sudoers.d/antidote-$AD_SSH_USER"
fi

# FRR sizes its per-descriptor tables by the open-file limit; the host's (often a million)
# would cost every router ~10 MiB for nothing.
ulimit -n 1024

# Everything that runs for the learner (sshd and all it starts, sudo included) and the
# daemons gets only these capabilities: enough to be root in a network lab (configure
# interfaces and routes, bind ports, change users), not enough to touch the host (no
# sys_admin, sys_module, sys_rawio, sys_ptrace, dac_read_search, mknod, sys_time, syslog, ...).
# This process keeps its own, runs nothing from disk once set up, and cannot be traced.
LAB_CAPS=-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+setfcap,+net_bind_service,+net_raw,+net_admin,+sys_chroot,+audit_write,+ipc_lock,+sys_nice
CONFINED=(setpriv --inh-caps=-all --bounding-set="$LAB_CAPS" --)
# FRR's privilege code insists on sys_admin (for VRFs as network namespaces). The daemons keep
# it; the learner cannot borrow it: without sys_ptrace nobody in the endpoint can trace a
# process holding capabilities it lacks, and nothing restarts a daemon it replaced.
DAEMON=(setpriv --inh-caps=-all --bounding-set="$LAB_CAPS,+sys_admin" --)

if [ "$AD_KIND" = frr ]; then
    mkdir -p /run/frr /var/log/frr
    chown frr:frr /run/frr /var/log/frr
    chmod 775 /run/frr
    printf 'service integrated-vtysh-config\n' >/etc/frr/vtysh.conf
    printf 'hostname %s\n' "$AD_HOSTNAME" >/etc/frr/frr.conf
    chown frr:frr /etc/frr/frr.conf
    [ "$AD_SSH_USER" = root ] || usermod -a -G frrvty,frr "$AD_SSH_USER"
    for daemon in ${AD_DAEMONS:-zebra staticd ospfd bgpd}; do
        extra=()
        [ "$daemon" = zebra ] && extra=(-s 90000000)
        "${DAEMON[@]}" /usr/lib/frr/$daemon -d -F traditional -A 127.0.0.1 "${extra[@]}" \
            >>"/var/log/frr/$daemon.log" 2>&1 ||
            fail "$daemon failed to start: $(tail -n 5 /var/log/frr/$daemon.log 2>/dev/null)"
    done
fi

# sshd with fresh host keys, passwords allowed (the learner never types them: the platform does).
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
mkdir -p /run/sshd
cat >/etc/ssh/sshd_config.d/antidote.conf <<CONF
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin $([ "$AD_SSH_USER" = root ] && echo yes || echo no)
UsePAM no
HostKey /etc/ssh/ssh_host_ed25519_key
PrintMotd no
CONF
"${CONFINED[@]}" /usr/sbin/sshd -E /var/log/sshd.log || fail "sshd failed to start: $(tail -n 5 /var/log/sshd.log 2>/dev/null)"

# The image's services (e.g. the web server of an http presentation): as the learner's user,
# confined like the learner, each in its own session with its output in /var/log.
n=0
while IFS= read -r service; do
    [ -n "$service" ] || continue
    n=$((n + 1))
    home=$(getent passwd "$AD_SSH_USER" | cut -d: -f6)
    (cd "$home" && HOME=$home USER=$AD_SSH_USER setsid setpriv --reuid="$AD_SSH_USER" \
        --regid="$(id -g "$AD_SSH_USER")" --init-groups --inh-caps=-all --bounding-set="$LAB_CAPS" \
        -- sh -c "$service" >>"/var/log/antidote-service-$n.log" 2>&1 </dev/null &)
done <<<"${AD_SERVICES:-}"

trap - ERR
touch /run/antidote-ready

# PID 1: reap orphans until told to stop; TERM stops every process of the endpoint. Blocking
# on a FIFO nobody writes costs no extra process; bash reaps children on SIGCHLD meanwhile.
trap 'kill -TERM -1 2>/dev/null; exit 0' TERM INT
mkfifo /run/antidote-init.fifo
while :; do
    read -r _ <>/run/antidote-init.fifo || true
done
