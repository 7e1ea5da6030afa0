"""Offline Debian 12 test hosts for the airgap.uv collection, without Docker.

Each host is a set of Linux namespaces (net, mount, pid, uts, ipc) running sshd
as its first process on an overlayfs root over a cached debootstrap base.  Its
only network link is a /30 veth pair to the controller: no default route, no
DNS.  See README.md beside this file for usage.

Python 3 standard library only, runs as root.  Called through the
offline-hosts wrapper beside it (ansible-test sanity allows only a few
shebangs, and `python3` is the name that exists on every Debian 12).
"""

import argparse
import contextlib
import ctypes
import fcntl
import glob
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SUITE = "bookworm"
VARIANT = "minbase"
# python3 is what Ansible needs on the target.  sudo and acl are there because
# real hosts have them and become_user to an unprivileged user relies on them;
# iproute2 and procps let tests look at the host from inside.  No pip, no venv:
# the point of the collection is a host that has neither.
INCLUDE = ("openssh-server", "python3", "iproute2", "procps", "sudo", "acl")
# Bump when the post-processing of the base changes, so cached bases get rebuilt.
BASE_POSTPROCESS_VERSION = 1

CONTROLLER_PACKAGES = {
    # package: a file that shows it is usable (dpkg may be absent or lie after
    # a half-finished install)
    "debootstrap": "/usr/sbin/debootstrap",
    "iproute2": "/usr/sbin/ip",
    "openssh-server": "/usr/sbin/sshd",
    "openssh-client": "/usr/bin/ssh-keygen",
    "util-linux": "/usr/bin/nsenter",
}

STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
VETH_RE = re.compile(r"^agu(\d+)c$")
READY_TIMEOUT = float(os.environ.get("AIRGAP_TESTBED_UP_TIMEOUT", "20"))
VETH_GONE_TIMEOUT = 15.0

# Runs as the first process of the new pid namespace, with the controller's
# root still visible: sets up the host's root and replaces itself with sshd.
# pivot_root (not chroot) and the lazy unmount of the old root are what make
# the controller's files (uv cache, pyenv, ...) unreachable from the host.
INIT_SH = r"""
set -eu
state=$1 name=$2 addr=$3 lower=$4
shift 4
r=$state/root
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$state/upper,workdir=$state/work" "$r"
mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
mount -t tmpfs -o mode=755,nosuid,size=1m tmpfs "$r/dev"
mknod -m 666 "$r/dev/null" c 1 3
mknod -m 666 "$r/dev/zero" c 1 5
mknod -m 666 "$r/dev/full" c 1 7
mknod -m 666 "$r/dev/random" c 1 8
mknod -m 666 "$r/dev/urandom" c 1 9
mknod -m 666 "$r/dev/tty" c 5 0
mkdir -m 755 "$r/dev/pts"
mkdir -m 1777 "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"
ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"
ln -s /proc/self/fd/1 "$r/dev/stdout"
ln -s /proc/self/fd/2 "$r/dev/stderr"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/dev/shm"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/tmp"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$r/run"
mkdir -m 755 "$r/run/sshd"
mkdir -m 1777 "$r/run/lock"
for p in "$@"; do
    mount --bind "$p" "$r$p"
    mount -o remount,bind,ro "$r$p"
done
printf '%s' "$name" > /proc/sys/kernel/hostname
mkdir "$r/run/.oldroot"
cd "$r"
pivot_root . run/.oldroot
cd /
umount -l /run/.oldroot
rmdir /run/.oldroot
exec /usr/sbin/sshd -D -e -o "ListenAddress=$addr:22"
"""

SSHD_DROPIN = """\
# airgap.uv test bed.  Included before Debian's own settings, so these win.
# No PAM: nothing in these namespaces runs a login session stack.
UsePAM no
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PidFile none
UseDNS no
"""


class TestbedError(Exception):
    pass


class Interrupted(BaseException):
    """SIGTERM/SIGHUP, turned into an exception so a half-made host is cleaned up."""


# ---------------------------------------------------------------- configuration


def _env_path(var, default):
    path = os.path.abspath(os.environ.get(var) or default)
    # Paths end up in ssh options and mount options, which do not quote.
    if re.search(r"[\s,:'\"\\]", path):
        raise TestbedError(f"{var}={path!r}: whitespace, commas, colons or quotes are not supported")
    return path


class Config:
    def __init__(self):
        self.cache = _env_path("AIRGAP_TESTBED_CACHE", "/var/cache/airgap-uv-testbed")
        # /run is wiped at reboot on systemd machines, as are the namespaces.
        self.state = _env_path("AIRGAP_TESTBED_STATE", "/run/airgap-uv-testbed")
        net = os.environ.get("AIRGAP_TESTBED_NET", "10.203")
        if not re.fullmatch(r"(25[0-5]|2[0-4]\d|1?\d?\d)\.(25[0-5]|2[0-4]\d|1?\d?\d)", net):
            raise TestbedError(f"AIRGAP_TESTBED_NET={net!r}: want two octets such as 10.203")
        self.net = net
        self.base = os.path.join(self.cache, f"base-{SUITE}")
        self.keydir = os.path.join(self.cache, "keys")
        self.client_key = os.path.join(self.keydir, "id_ed25519")
        self.hosts_dir = os.path.join(self.state, "hosts")
        self.known_hosts = os.path.join(self.state, "known_hosts")
        self.inventory = os.path.join(self.state, "inventory.yml")
        # Several state dirs may be in use at once (the pytest suite uses its
        # own): kernel object names carry a tag of the state dir, so that
        # `down --all` of one never touches another's hosts.
        self.tag = hashlib.sha256(os.path.realpath(self.state).encode()).hexdigest()[:6]
        # One lock for every state dir: addresses and veth names are global.
        self.lock = "/run/lock/airgap-uv-testbed.lock"

    def netns(self, name):
        return f"agu-{self.tag}-{name}"

    def alias(self, name):
        return f"airgap-uv-testbed {self.tag} {name}"


CFG = None  # set in main()


# ---------------------------------------------------------------- small helpers


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(argv, check=True, capture=True, env=None, timeout=None, **kw):
    try:
        proc = subprocess.run(
            argv,
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            text=True,
            env=env if env is not None else clean_env(),
            timeout=timeout,
            **kw,
        )
    except FileNotFoundError as exc:
        raise TestbedError(f"{argv[0]} not found; run `offline-hosts prepare` first") from exc
    if check and proc.returncode != 0:
        err = (proc.stderr or "").strip() if capture else ""
        raise TestbedError(f"command failed ({proc.returncode}): {' '.join(argv)}\n{err}")
    return proc


def clean_env(extra=None):
    env = {"PATH": STD_PATH, "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/root")}
    if extra:
        env.update(extra)
    return env


def write_atomic(path, text, mode=0o644):
    d = os.path.dirname(path) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def global_lock():
    os.makedirs(os.path.dirname(CFG.lock), exist_ok=True)
    with open(CFG.lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for lock {CFG.lock} (another offline-hosts run is busy)")
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def signals_raise():
    def handler(signum, _frame):
        raise Interrupted(f"signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def signals_ignored():
    """Cleanup must finish even if the caller presses ^C again."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, signal.SIG_IGN) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def require_root():
    if sys.platform != "linux":
        raise TestbedError("Linux only")
    if os.geteuid() != 0:
        raise TestbedError("must run as root (network and mount namespaces)")


# ---------------------------------------------------------------- processes


def proc_starttime(pid):
    """Start time in clock ticks, or None if gone or a zombie.  Pairs with the
    pid to tell a process from a later one that reused its pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def proc_alive(pid, starttime):
    return pid and starttime is not None and proc_starttime(pid) == starttime


def ns_ident(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def netns_ident(nsname):
    """Identity of a named netns, or None if the file is not a live nsfs mount
    (after a reboot or an interrupted `ip netns add` it can be a plain file)."""
    ident = ns_ident(f"/run/netns/{nsname}")
    mine = ns_ident("/proc/self/ns/net")
    if ident is None or mine is None or ident[0] != mine[0]:
        return None
    return ident


def pids_in_netns(ident):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and ns_ident(f"/proc/{entry}/ns/net") == ident:
            pids.append(int(entry))
    return pids


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        pass
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                data = f.read()
        except OSError:
            continue
        if int(data[data.rfind(")") + 2 :].split()[1]) == pid:
            kids.append(int(entry))
    return kids


def processes_using(path):
    """{pid: starttime} of processes whose command line, root or cwd is in path."""
    path = os.path.realpath(path)
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                hit = path.encode() in f.read()
            for link in ("root", "cwd"):
                target = os.readlink(f"/proc/{entry}/{link}")
                hit = hit or target == path or target.startswith(path + "/")
        except OSError:
            continue
        st = proc_starttime(int(entry))
        if hit and st is not None:
            found[int(entry)] = st
    return found


def _die_with_parent():
    """preexec_fn: SIGTERM when prepare dies, so a killed prepare does not
    leave debootstrap writing into a dir the next prepare deletes."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def kill_and_wait(pids, timeout=10.0):
    """pids: {pid: starttime}.  SIGKILL, since the first process of a pid
    namespace ignores signals it has no handler for."""
    for pid, st in pids.items():
        if proc_alive(pid, st):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p, st in pids.items() if proc_alive(p, st)]
        if not left:
            return
        time.sleep(0.02)
    raise TestbedError(f"processes would not die: {left}")


# ---------------------------------------------------------------- mounts / files


def _unescape_mount(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounts_under(path, mountinfo="/proc/self/mountinfo"):
    path = os.path.realpath(path)
    found = []
    try:
        with open(mountinfo) as f:
            lines = f.readlines()
    except OSError:
        return found
    for line in lines:
        mp = _unescape_mount(line.split()[4])
        if mp == path or mp.startswith(path + "/"):
            found.append(mp)
    return found


def path_used_by_any_mount(path):
    """Whether some process in any mount namespace has an overlay over path."""
    needle = f"lowerdir={os.path.realpath(path)}"
    for mi in glob.glob("/proc/[0-9]*/mountinfo"):
        try:
            with open(mi) as f:
                if needle in f.read():
                    return True
        except OSError:
            continue
    return False


def safe_rmtree(path):
    """rm -rf that first detaches whatever is mounted below path.  A killed
    debootstrap can leave the controller's /dev or /proc bind-mounted inside
    its target; a plain rmtree would then delete the controller's files."""
    if not os.path.lexists(path):
        return
    for _attempt in range(5):
        mps = mounts_under(path)
        if not mps:
            break
        for mp in sorted(mps, key=len, reverse=True):
            run(["umount", "-l", mp], check=False)
    if mounts_under(path):
        raise TestbedError(f"refusing to delete {path}: still has mounts {mounts_under(path)}")
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


# ---------------------------------------------------------------- prepare


def debian_mirror():
    """The Debian archive URL this machine's apt uses, read at run time so no
    mirror name is baked into the repository."""
    if os.environ.get("AIRGAP_TESTBED_MIRROR"):
        return os.environ["AIRGAP_TESTBED_MIRROR"]
    candidates = []  # (score, uri)
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path) as f:
            text = f.read()
        for stanza in re.split(r"\n\s*\n", text):
            fields, key = {}, None
            for line in stanza.splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                if line[0] in " \t" and key:
                    fields[key] += " " + line.strip()
                elif ":" in line:
                    key, _sep, val = line.partition(":")
                    key = key.strip().lower()
                    fields[key] = val.strip()
            if fields.get("enabled", "yes").lower() == "no":
                continue
            if "deb" not in fields.get("types", "").split():
                continue
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    candidates.append((suite, uri))
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        try:
            with open(path) as f:
                lines = f.readlines()
        except OSError:
            continue
        for line in lines:
            line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(line) >= 3 and line[0] == "deb":
                candidates.append((line[2], line[1]))
    candidates = [(s, u) for s, u in candidates if re.match(r"https?://", u)]
    for want in (lambda s: s == SUITE, lambda s: not re.search(r"security|updates|backports", s)):
        for suite, uri in candidates:
            if want(suite):
                return uri
    raise TestbedError(
        "no http(s) Debian mirror found in /etc/apt/sources.list*; set AIRGAP_TESTBED_MIRROR"
    )


def base_recipe():
    return {
        "suite": SUITE,
        "variant": VARIANT,
        "include": list(INCLUDE),
        "postprocess": BASE_POSTPROCESS_VERSION,
    }


def base_stamp(base):
    return os.path.join(base, "etc", "airgap-testbed-base.json")


def base_ready(base):
    try:
        with open(base_stamp(base)) as f:
            return json.load(f).get("recipe") == base_recipe()
    except (OSError, ValueError):
        return False


def install_controller_packages():
    def usable(pkg, probe):
        if not os.path.exists(probe):
            return False
        if shutil.which("dpkg-query", path=STD_PATH) is None:
            return True
        out = run(["dpkg-query", "-W", "-f=${db:Status-Status}", pkg], check=False)
        return out.returncode == 0 and out.stdout.strip() == "installed"

    missing = [p for p, probe in CONTROLLER_PACKAGES.items() if not usable(p, probe)]
    if missing:
        if shutil.which("apt-get", path=STD_PATH) is None:
            raise TestbedError(f"missing {missing} and no apt-get to install them")
        log(f"installing controller packages: {' '.join(missing)}")
        env = clean_env({"DEBIAN_FRONTEND": "noninteractive"})
        lockwait = ["-o", "DPkg::Lock::Timeout=300"]
        run(["apt-get", *lockwait, "update"], env=env, capture=False)
        # Installing openssh-server would start the controller's own sshd;
        # policy-rc.d 101 forbids that.  Ours is removed again afterwards so
        # later package installs on this machine behave normally.
        policy = "/usr/sbin/policy-rc.d"
        ours = not os.path.lexists(policy)
        if ours:
            write_atomic(policy, "#!/bin/sh\n# airgap.uv test bed, temporary\nexit 101\n", 0o755)
        try:
            run(
                ["apt-get", *lockwait, "install", "-y", "--no-install-recommends", *missing],
                env=env,
                capture=False,
            )
        finally:
            if ours:
                with contextlib.suppress(OSError):
                    os.unlink(policy)
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read() and shutil.which("modprobe", path=STD_PATH):
            run(["modprobe", "overlay"], check=False)
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            raise TestbedError("kernel has no overlay filesystem")


def base_in_use():
    """Whether any host (of any state dir) runs on the base.  Overlay keeps the
    lowerdir string it was mounted with, so a base renamed to .old-* still
    shows up under the base's own path."""
    return path_used_by_any_mount(CFG.base)


def build_base(force=False):
    base = CFG.base
    os.makedirs(CFG.cache, exist_ok=True)
    # Leftovers of interrupted builds, and old bases no host still uses.
    for stale in glob.glob(f"{base}.tmp-*") + glob.glob(f"{base}.old-*"):
        if ".old-" in stale and base_in_use():
            continue
        # We hold the lock, so whatever still works in a temp dir is an
        # orphan of a killed build (debootstrap, or dpkg chrooted into it).
        kill_and_wait(processes_using(stale))
        log(f"removing {stale}")
        safe_rmtree(stale)
    if base_ready(base) and not force:
        return False
    tmp = f"{base}.tmp-{os.getpid()}"
    safe_rmtree(tmp)
    mirror = debian_mirror()
    debs = os.path.join(CFG.cache, "debs")
    os.makedirs(debs, exist_ok=True)
    logfile = os.path.join(CFG.cache, "debootstrap.log")
    argv = [
        "debootstrap",
        f"--variant={VARIANT}",
        f"--include={','.join(INCLUDE)}",
        "--components=main",
        f"--cache-dir={debs}",
        SUITE,
        tmp,
        mirror,
    ]
    log(f"building base with debootstrap ({SUITE}, {VARIANT}); log: {logfile}")
    t0 = time.monotonic()
    try:
        for attempt in (1, 2):
            with open(logfile, "w") as lf:
                rc = subprocess.run(
                    argv, check=False, stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT,
                    env=clean_env(), preexec_fn=_die_with_parent,
                ).returncode
            if rc == 0:
                break
            with open(logfile) as lf:
                tail = "".join(lf.readlines()[-15:])
            if attempt == 2:
                raise TestbedError(f"debootstrap failed ({rc}); last lines of {logfile}:\n{tail}")
            log(f"debootstrap failed ({rc}), retrying once; last lines:\n{tail}")
            safe_rmtree(tmp)
        postprocess_base(tmp)
        if os.path.lexists(base):
            in_use = base_in_use()
            old = f"{base}.old-{int(time.time())}"
            # Renaming a lower dir under live overlays is harmless; deleting
            # is not, so an old base in use stays until a later prepare.
            os.rename(base, old)
            if not in_use:
                safe_rmtree(old)
        os.rename(tmp, base)
    except BaseException:
        with signals_ignored():
            kill_and_wait(processes_using(tmp))
            safe_rmtree(tmp)
        raise
    log(f"base ready in {time.monotonic() - t0:.1f}s: {base}")
    return True


def postprocess_base(root):
    for p in ("usr/bin/python3", "usr/sbin/sshd", "usr/lib/openssh/sftp-server"):
        if not os.path.exists(os.path.join(root, p)):
            raise TestbedError(f"base lacks /{p}")
    if glob.glob(os.path.join(root, "usr/lib/python3*/ensurepip")) or glob.glob(
        os.path.join(root, "usr/lib/python3/dist-packages/pip")
    ):
        raise TestbedError("base unexpectedly has pip or ensurepip")
    leftovers = mounts_under(root)
    if leftovers:
        raise TestbedError(f"debootstrap left mounts: {leftovers}")
    # debootstrap copies the controller's name service files in.
    resolv = os.path.join(root, "etc/resolv.conf")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(resolv)
    with open(resolv, "w") as f:
        f.write("# offline test host: no name service\n")
    with open(os.path.join(root, "etc/hosts"), "w") as f:
        f.write("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(root, "etc/hostname"))
    # Host keys made at install time would be shared by every host.
    for key in glob.glob(os.path.join(root, "etc/ssh/ssh_host_*")):
        os.unlink(key)
    dropin_dir = os.path.join(root, "etc/ssh/sshd_config.d")
    os.makedirs(dropin_dir, exist_ok=True)
    with open(os.path.join(dropin_dir, "00-airgap-testbed.conf"), "w") as f:
        f.write(SSHD_DROPIN)
    for deb in glob.glob(os.path.join(root, "var/cache/apt/archives/*.deb")):
        os.unlink(deb)
    # The sshd config must be accepted before this base is called complete.
    probe = os.path.join(root, "etc/ssh/ssh_host_ed25519_key")
    privsep = os.path.join(root, "run/sshd")
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", probe])
    try:
        os.makedirs(privsep, exist_ok=True)
        run(["chroot", root, "/usr/sbin/sshd", "-t"])
    finally:
        for key in glob.glob(probe + "*"):
            os.unlink(key)
        shutil.rmtree(privsep, ignore_errors=True)
    stamp = {"recipe": base_recipe(), "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(base_stamp(root), "w") as f:
        json.dump(stamp, f, indent=1)
        f.write("\n")


def cmd_prepare(args):
    require_root()
    stale = glob.glob(f"{CFG.base}.tmp-*") + glob.glob(f"{CFG.base}.old-*")
    needed = list(CONTROLLER_PACKAGES.values()) + [CFG.client_key, CFG.client_key + ".pub"]
    if not args.rebuild and not stale and base_ready(CFG.base) and all(map(os.path.exists, needed)):
        log(f"base ready: {CFG.base}")
        return 0
    with global_lock(), signals_raise():
        install_controller_packages()
        if not build_base(force=args.rebuild):
            log(f"base ready: {CFG.base}")
        ensure_client_key()
    return 0


# ---------------------------------------------------------------- keys


def _keygen(path, comment):
    d = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=".tmp-key-")
    try:
        tmp = os.path.join(d, "key")
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", tmp])
        # Public half first: a private key without its .pub is regenerated.
        os.replace(tmp + ".pub", path + ".pub")
        os.replace(tmp, path)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def ensure_client_key():
    os.makedirs(CFG.keydir, mode=0o700, exist_ok=True)
    os.chmod(CFG.keydir, 0o700)
    if not (os.path.isfile(CFG.client_key) and os.path.isfile(CFG.client_key + ".pub")):
        _keygen(CFG.client_key, "airgap-uv-testbed controller")
    os.chmod(CFG.client_key, 0o600)
    return CFG.client_key


def ensure_host_key(name):
    """Generated once per host name and kept across down/up, so known_hosts
    entries stay valid for a name."""
    d = os.path.join(CFG.keydir, "hosts", name)
    os.makedirs(d, mode=0o700, exist_ok=True)
    key = os.path.join(d, "ssh_host_ed25519_key")
    if not (os.path.isfile(key) and os.path.isfile(key + ".pub")):
        _keygen(key, f"root@{name}")
    return key


def read_pub(path):
    with open(path) as f:
        return f.read().strip()


# ---------------------------------------------------------------- network


def ip_links():
    out = run(["ip", "-j", "link", "show"]).stdout
    return {l["ifname"]: l for l in json.loads(out or "[]")}


def controller_ipv4_addrs():
    out = run(["ip", "-j", "-4", "addr", "show"]).stdout
    addrs = []
    for link in json.loads(out or "[]"):
        for a in link.get("addr_info", []):
            addrs.append(ipaddress.ip_address(a["local"]))
    return addrs


def subnet(index):
    return ipaddress.ip_network(f"{CFG.net}.{index}.0/30")


def allocate_index():
    used = set()
    for meta in all_metas().values():
        if isinstance(meta.get("index"), int):
            used.add(meta["index"])
    for ifname in ip_links():
        m = VETH_RE.match(ifname)
        if m:
            used.add(int(m.group(1)))
    addrs = controller_ipv4_addrs()
    for index in range(1, 255):
        if index in used:
            continue
        if any(a in subnet(index) for a in addrs):
            continue  # the controller already uses this range for something else
        return index
    raise TestbedError("no free address index (254 hosts?)")


def write_proc(path, value):
    with contextlib.suppress(OSError):
        with open(path, "w") as f:
            f.write(value)


# ---------------------------------------------------------------- hosts


def host_dir(name):
    return os.path.join(CFG.hosts_dir, name)


def load_meta(name):
    try:
        with open(os.path.join(host_dir(name), "meta.json")) as f:
            meta = json.load(f)
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


def save_meta(name, meta):
    write_atomic(os.path.join(host_dir(name), "meta.json"), json.dumps(meta, indent=1) + "\n")


def all_metas():
    metas = {}
    for d in glob.glob(os.path.join(CFG.hosts_dir, "*")):
        metas[os.path.basename(d)] = load_meta(os.path.basename(d))
    return metas


def known_names():
    """Every host of this state dir that has anything left: state, netns or veth."""
    names = set(all_metas())
    prefix = f"agu-{CFG.tag}-"
    with contextlib.suppress(OSError):
        for ns in os.listdir("/run/netns"):
            if ns.startswith(prefix):
                names.add(ns[len(prefix) :])
    with contextlib.suppress(TestbedError):
        aprefix = CFG.alias("")
        for link in ip_links().values():
            alias = link.get("ifalias") or ""
            if alias.startswith(aprefix):
                names.add(alias[len(aprefix) :])
    return {n for n in names if NAME_RE.match(n)}


def sshd_banner(addr, timeout=1.0):
    try:
        with socket.create_connection((addr, 22), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def host_running(name, meta=None, probe=True):
    meta = meta if meta is not None else load_meta(name)
    if not meta.get("ready"):
        return False
    ident = netns_ident(CFG.netns(name))
    pid1 = meta.get("pid1")
    if ident is None or not proc_alive(pid1, meta.get("pid1_start")):
        return False
    if ns_ident(f"/proc/{pid1}/ns/net") != ident:
        return False
    return sshd_banner(meta["addr"]) if probe else True


def prepare_upper(name, d, pythons):
    upper = os.path.join(d, "upper")
    for sub in ("etc/ssh", "root/.ssh"):
        os.makedirs(os.path.join(upper, sub), exist_ok=True)
    os.makedirs(os.path.join(d, "work"), exist_ok=True)
    os.makedirs(os.path.join(d, "root"), exist_ok=True)
    # sshd's StrictModes wants these private; the upper dir's modes win.
    os.chmod(os.path.join(upper, "root"), 0o700)
    os.chmod(os.path.join(upper, "root/.ssh"), 0o700)
    with open(os.path.join(upper, "etc/hostname"), "w") as f:
        f.write(name + "\n")
    with open(os.path.join(upper, "etc/hosts"), "w") as f:
        f.write(
            f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
        )
    key = ensure_host_key(name)
    dst = os.path.join(upper, "etc/ssh/ssh_host_ed25519_key")
    shutil.copyfile(key, dst)
    os.chmod(dst, 0o600)
    shutil.copyfile(key + ".pub", dst + ".pub")
    os.chmod(dst + ".pub", 0o644)
    ak = os.path.join(upper, "root/.ssh/authorized_keys")
    with open(ak, "w") as f:
        f.write(read_pub(CFG.client_key + ".pub") + "\n")
    os.chmod(ak, 0o600)
    for p in pythons:
        os.makedirs(upper + p, exist_ok=True)


def make_network(name, index):
    ns = CFG.netns(name)
    veth = f"agu{index}c"
    net = subnet(index)
    ctl, addr = str(net[1]), str(net[2])
    run(["ip", "netns", "add", ns])
    # IPv6 off on the link so the host gets no link-local route either; lo
    # (made with the netns, before this) keeps ::1.
    run(
        ["nsenter", f"--net=/run/netns/{ns}", "sh", "-c",
         "p=/proc/sys/net/ipv6/conf/default/disable_ipv6; [ ! -e $p ] || echo 1 > $p"]
    )
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "link", "set", veth, "alias", CFG.alias(name)])
    write_proc(f"/proc/sys/net/ipv6/conf/{veth}/disable_ipv6", "1")
    # Even if the controller routes (ip_forward=1, e.g. for containers), never
    # forward what arrives from an offline host.
    write_proc(f"/proc/sys/net/ipv4/conf/{veth}/forwarding", "0")
    run(["ip", "addr", "add", f"{ctl}/30", "dev", veth])
    run(["ip", "link", "set", veth, "up"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    return veth, ctl, addr


# ---------------------------------------------------------------- enclaves
#
# An enclave is one shared link (a bridge on the controller) that some hosts join beside their own
# /30 link: they reach each other and the controller's address on it, and nothing else (no route,
# no forwarding by the controller). Network: the second octet of AIRGAP_TESTBED_NET plus one
# (10.204 by default), E.0/24 per enclave: hosts at .INDEX (their host index), the controller at .254.

BRIDGE_RE = re.compile(r"^agb(\d+)$")


def enclave_prefix():
    first, second = CFG.net.split(".")
    return f"{first}.{(int(second) + 1) % 256}"


def enclave_subnet(index):
    return ipaddress.ip_network(f"{enclave_prefix()}.{index}.0/24")


def enclave_file(name):
    return os.path.join(CFG.state, "enclaves", f"{name}.json")


def all_enclaves():
    found = {}
    for path in glob.glob(os.path.join(CFG.state, "enclaves", "*.json")):
        with contextlib.suppress(OSError, ValueError):
            with open(path) as f:
                found[os.path.basename(path)[:-5]] = json.load(f)
    return found


def enclave_alias(name):
    return f"airgap-uv-testbed-enclave {CFG.tag} {name}"


def ensure_enclave(name):
    """The enclave's bridge, made (up, with the controller's address) when missing."""
    meta = all_enclaves().get(name)
    links = ip_links()
    if meta is None:
        used = {m.get("index") for m in all_enclaves().values()}
        used |= {int(m.group(1)) for m in map(BRIDGE_RE.match, links) if m}
        addrs = controller_ipv4_addrs()
        free = [i for i in range(1, 255) if i not in used and not any(a in enclave_subnet(i) for a in addrs)]
        if not free:
            raise TestbedError("no free enclave network")
        meta = {"name": name, "index": free[0], "bridge": f"agb{free[0]}"}
        write_atomic(enclave_file(name), json.dumps(meta, indent=1) + "\n")
    bridge = meta["bridge"]
    meta["controller_addr"] = str(enclave_subnet(meta["index"])[254])
    if bridge not in links:
        run(["ip", "link", "add", bridge, "type", "bridge"])
        run(["ip", "link", "set", bridge, "alias", enclave_alias(name)])
        write_proc(f"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6", "1")
        # The hosts' packets are switched between them, never routed anywhere by the controller.
        write_proc(f"/proc/sys/net/ipv4/conf/{bridge}/forwarding", "0")
        run(["ip", "addr", "add", f"{meta['controller_addr']}/24", "dev", bridge])
        run(["ip", "link", "set", bridge, "up"])
    return meta


def join_enclave(name, enclave):
    """Give host NAME a second link, on ENCLAVE's bridge (no-op when it has it)."""
    meta = load_meta(name)
    if meta.get("enclave") not in (None, enclave["name"]):
        raise TestbedError(f"{name}: already in enclave {meta['enclave']}; take it down first")
    veth = f"agu{meta['index']}e"
    if meta.get("enclave") == enclave["name"] and veth in ip_links():
        return meta
    if meta["index"] >= 254:
        raise TestbedError(f"{name}: host index {meta['index']} has no enclave address")
    addr = str(enclave_subnet(enclave["index"])[meta["index"]])
    ns = CFG.netns(name)
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "enc0", "netns", ns])
    # The host's alias: teardown waits for this link too (it dies with the namespace).
    run(["ip", "link", "set", veth, "alias", CFG.alias(name)])
    write_proc(f"/proc/sys/net/ipv6/conf/{veth}/disable_ipv6", "1")
    write_proc(f"/proc/sys/net/ipv4/conf/{veth}/forwarding", "0")
    run(["ip", "link", "set", veth, "master", enclave["bridge"]])
    run(["ip", "link", "set", veth, "up"])
    run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "enc0"])
    run(["ip", "-n", ns, "link", "set", "enc0", "up"])
    meta.update(enclave=enclave["name"], enclave_addr=addr, enclave_veth=veth)
    save_meta(name, meta)
    log(f"{name}: in enclave {enclave['name']} at {addr}")
    return meta


def prune_enclaves():
    """Remove the bridge of every enclave no host of this state dir is in any more."""
    members = {m.get("enclave") for m in all_metas().values()}
    links = ip_links()
    for name, meta in all_enclaves().items():
        if name in members:
            continue
        if meta.get("bridge") in links and links[meta["bridge"]].get("ifalias") == enclave_alias(name):
            run(["ip", "link", "del", meta["bridge"]], check=False)
        with contextlib.suppress(OSError):
            os.unlink(enclave_file(name))


def start_namespace(name, d, addr, pythons):
    init = os.path.join(d, "init.sh")
    write_atomic(init, INIT_SH.lstrip(), 0o755)
    logf = open(os.path.join(d, "console.log"), "ab")
    argv = [
        "nsenter", f"--net=/run/netns/{CFG.netns(name)}", "--",
        "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork",
        # Killing unshare (or its dying) takes the whole host down with it.
        "--kill-child", "--propagation", "private", "--",
        "/bin/sh", init, d, name, addr, CFG.base, *pythons,
    ]
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=clean_env(),
            cwd="/", start_new_session=True, close_fds=True,
        )
    finally:
        logf.close()
    return proc


def console_tail(d, n=20):
    try:
        with open(os.path.join(d, "console.log"), errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def up_one(name, pythons):
    meta = load_meta(name)
    if host_running(name, meta):
        log(f"{name}: already up at {meta['addr']}")
        return meta
    if name in known_names():
        log(f"{name}: cleaning up leftovers of an earlier run")
        teardown(name)
    t0 = time.monotonic()
    index = allocate_index()
    d = host_dir(name)
    proc = None
    # Saved before any kernel object exists, so `down` can always find them; inside the try, so a
    # signal right after the state file appears (before any other step) still cleans up.
    meta = {"name": name, "index": index, "netns": CFG.netns(name), "python": pythons}
    try:
        os.makedirs(d)
        save_meta(name, meta)
        prepare_upper(name, d, pythons)
        veth, ctl, addr = make_network(name, index)
        meta.update(veth=veth, controller_addr=ctl, addr=addr)
        save_meta(name, meta)
        proc = boot(name, meta)
    except BaseException:
        with signals_ignored():
            log(f"{name}: bring-up failed, cleaning up")
            try:
                kill_untracked_children(proc)
                teardown(name, proc=proc)
            except Exception as exc:  # the original error matters more
                log(f"{name}: cleanup failed too: {exc}")
        raise
    log(f"{name}: up at {addr} in {time.monotonic() - t0:.2f}s")
    return meta


def boot(name, meta):
    """Starts the host's namespaces on its disk (upper dir) and network, and waits for sshd."""
    d = host_dir(name)
    proc = start_namespace(name, d, meta["addr"], meta["python"])
    meta.update(unshare_pid=proc.pid, unshare_start=proc_starttime(proc.pid), pid1=None, ready=False)
    save_meta(name, meta)
    deadline = time.monotonic() + READY_TIMEOUT
    pid1 = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TestbedError(f"{name}: namespace exited ({proc.returncode}):\n{console_tail(d)}")
        if pid1 is None:
            kids = children_of(proc.pid)
            if kids:
                pid1 = kids[0]
                meta.update(pid1=pid1, pid1_start=proc_starttime(pid1))
                save_meta(name, meta)
        if pid1 is not None and sshd_banner(meta["addr"], timeout=0.5):
            break
        time.sleep(0.02)
    else:
        raise TestbedError(f"{name}: sshd not answering after {READY_TIMEOUT}s:\n{console_tail(d)}")
    meta.update(ready=True, started=time.time())
    save_meta(name, meta)
    return proc


def stop_processes(name, meta):
    """Kills every process of the host: its namespaces' first process, unshare, and anything else
    in its network namespace."""
    # The namespace's first process goes first, so that unshare, still alive,
    # reaps it: an init that does not reap (some CI sandboxes) would collect
    # zombies otherwise.  Killing it kills everything else in the pid namespace.
    if proc_alive(meta.get("pid1"), meta.get("pid1_start")):
        kill_and_wait({meta["pid1"]: meta["pid1_start"]})
    victims = {}
    if proc_alive(meta.get("unshare_pid"), meta.get("unshare_start")):
        victims[meta["unshare_pid"]] = meta["unshare_start"]
    ident = netns_ident(CFG.netns(name))
    if ident is not None:
        for pid in pids_in_netns(ident):
            st = proc_starttime(pid)
            if st is not None and pid != os.getpid():
                victims[pid] = st
    kill_and_wait(victims)


def restart_one(name):
    """A reboot: every process of the host dies, its /run and /tmp go (tmpfs), its disk and
    network stay; then it boots again."""
    meta = load_meta(name)
    if not meta.get("ready"):
        raise TestbedError(f"{name}: not up; bring it up with `offline-hosts up {name}`")
    t0 = time.monotonic()
    stop_processes(name, meta)
    boot(name, meta)
    log(f"{name}: restarted at {meta['addr']} in {time.monotonic() - t0:.2f}s")


def kill_untracked_children(proc):
    """A signal can land between fork and Popen's return: that child (`ip netns add`, say) runs
    on with nobody waiting for it and could make its object after teardown has looked."""
    keep = proc.pid if proc is not None else None
    kids = {p: proc_starttime(p) for p in children_of(os.getpid()) if p != keep}
    kill_and_wait({p: st for p, st in kids.items() if st is not None})


def teardown(name, proc=None):
    """Remove everything a host may have, in any state of completion.  Each
    step works without the previous ones having happened."""
    meta = load_meta(name)
    ns = CFG.netns(name)
    stop_processes(name, meta)
    if proc is not None:
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)
    nsfile = f"/run/netns/{ns}"
    if os.path.lexists(nsfile):
        run(["ip", "netns", "del", ns], check=False)
        if os.path.lexists(nsfile):
            run(["umount", "-l", nsfile], check=False)
            with contextlib.suppress(OSError):
                os.unlink(nsfile)
    # The veth dies with the netns, but asynchronously.  Only links that are
    # certainly ours are waited for or deleted: same alias, or the recorded
    # name still without an alias (made, then interrupted before the alias).
    alias = CFG.alias(name)

    def ours():
        links = ip_links()
        mine = [n for n, l in links.items() if l.get("ifalias") == alias]
        v = meta.get("veth") or (f"agu{meta['index']}c" if isinstance(meta.get("index"), int) else None)
        if v in links and not links[v].get("ifalias") and v not in mine:
            mine.append(v)
        return mine

    deadline = time.monotonic() + VETH_GONE_TIMEOUT
    left = ours()
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = ours()
    for v in left:
        run(["ip", "link", "del", v], check=False)
    safe_rmtree(host_dir(name))


def write_known_hosts():
    lines = []
    for name, meta in sorted(all_metas().items()):
        if host_running(name, meta, probe=False):
            key = read_pub(ensure_host_key(name) + ".pub").split()
            lines.append(f"{meta['addr']} {key[0]} {key[1]}\n")
    write_atomic(CFG.known_hosts, "".join(lines))


def running_hosts(names=None):
    metas = all_metas()
    result = {}
    for name in sorted(names if names else metas):
        meta = metas.get(name, {})
        if host_running(name, meta, probe=False):
            result[name] = meta
        elif names:
            raise TestbedError(f"{name}: not up")
    return result


def render_inventory(hosts):
    def q(s):
        return json.dumps(s)  # a JSON string is a valid YAML scalar

    common = (
        f"-o UserKnownHostsFile={CFG.known_hosts} -o GlobalKnownHostsFile=/dev/null "
        "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o ConnectTimeout=10"
    )
    out = ["# Generated by tests/testbed/offline-hosts; valid while these hosts are up.", "all:"]
    if not hosts:
        out.append("  hosts: {}")
    else:
        out.append("  hosts:")
        for name, meta in hosts.items():
            out += [
                f"    {name}:",
                f"      ansible_host: {q(meta['addr'])}",
                "      ansible_port: 22",
                "      ansible_user: root",
                f"      ansible_ssh_private_key_file: {q(CFG.client_key)}",
                f"      ansible_ssh_common_args: {q(common)}",
                "      ansible_python_interpreter: /usr/bin/python3",
            ]
            if meta.get("enclave_addr"):
                out.append(f"      airgap_uv_enclave_address: {q(meta['enclave_addr'])}")
        out += ["  children:", "    offline_hosts:", "      hosts:"]
        out += [f"        {name}: {{}}" for name in hosts]
    return "\n".join(out) + "\n"


def refresh_files():
    write_known_hosts()
    write_atomic(CFG.inventory, render_inventory(running_hosts()))


# ---------------------------------------------------------------- commands


def check_names(names):
    for n in names:
        if not NAME_RE.match(n):
            raise TestbedError(f"bad host name {n!r}: lowercase letters, digits, '-', at most 32")


def cmd_up(args):
    require_root()
    check_names(args.names + ([args.enclave] if args.enclave else []))
    pythons = []
    for p in args.python or []:
        real = os.path.realpath(p)
        if not os.access(os.path.join(real, "bin", "python3"), os.X_OK):
            raise TestbedError(f"--python {p}: no bin/python3 there")
        pythons.append(real)
    if not base_ready(CFG.base):
        raise TestbedError(f"no base at {CFG.base}; run `offline-hosts prepare` first")
    with global_lock(), signals_raise():
        ensure_client_key()
        os.makedirs(CFG.hosts_dir, exist_ok=True)
        try:
            for name in dict.fromkeys(args.names):
                up_one(name, pythons)
            if args.enclave:
                enclave = ensure_enclave(args.enclave)
                for name in dict.fromkeys(args.names):
                    join_enclave(name, enclave)
        finally:
            with signals_ignored():
                refresh_files()
    for name, meta in running_hosts(args.names).items():
        print(f"{name}\t{meta['addr']}" + (f"\t{meta['enclave_addr']}" if meta.get("enclave_addr") else ""))
    return 0


def cmd_restart(args):
    require_root()
    check_names(args.names)
    with global_lock(), signals_raise():
        for name in dict.fromkeys(args.names):
            restart_one(name)
    for name, meta in running_hosts(args.names).items():
        print(f"{name}\t{meta['addr']}")
    return 0


def cmd_down(args):
    require_root()
    if not args.all and not args.names:
        raise TestbedError("down: give host names or --all")
    check_names(args.names)
    with global_lock(), signals_ignored():
        names = sorted(known_names()) if args.all else list(dict.fromkeys(args.names))
        t0 = time.monotonic()
        for name in names:
            teardown(name)
            log(f"{name}: down")
        if os.path.isdir(CFG.state):
            prune_enclaves()
            refresh_files()
        log(f"down: {len(names)} host(s) in {time.monotonic() - t0:.2f}s")
    return 0


def cmd_status(args):
    require_root()
    metas = all_metas()
    rows = []
    for name in sorted(known_names()):
        meta = metas.get(name, {})
        if host_running(name, meta):
            state = "up"
        elif host_running(name, meta, probe=False):
            state = "up (sshd not answering)"
        else:
            state = "broken (run down or up)"
        rows.append((name, meta.get("addr", "-"), str(meta.get("pid1", "-")), state,
                     meta.get("enclave") or "-", meta.get("enclave_addr") or "-"))
    if args.json:
        keys = ("name", "addr", "pid1", "state", "enclave", "enclave_addr")
        print(json.dumps([{k: (None if v == "-" and k.startswith("enclave") else v) for k, v in zip(keys, r)}
                          for r in rows], indent=1))
    else:
        for r in rows:
            print("\t".join(r))
    return 0


def cmd_inventory(args):
    require_root()
    check_names(args.names)
    text = render_inventory(running_hosts(args.names))
    if args.write:
        write_atomic(os.path.abspath(args.write), text)
        log(f"inventory written to {args.write}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_exec(args):
    require_root()
    check_names([args.name])
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        cmd = ["/bin/bash", "-l"] if sys.stdin.isatty() else ["/bin/sh"]
    meta = load_meta(args.name)
    if not host_running(args.name, meta, probe=False):
        raise TestbedError(f"{args.name}: not up")
    env = {"PATH": STD_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": os.environ.get("TERM", "dumb")}
    nsenter = shutil.which("nsenter", path=STD_PATH)
    argv = ["nsenter", "-t", str(meta["pid1"]), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--", *cmd]
    os.execve(nsenter, argv, env)


def main(argv=None):
    global CFG
    os.umask(0o022)
    parser = argparse.ArgumentParser(
        prog="offline-hosts",
        description="Offline Debian 12 test hosts in namespaces (airgap.uv test bed).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="install prerequisites and build the cached base once")
    p.add_argument("--rebuild", action="store_true", help="build the base again even if cached")
    p.set_defaults(func=cmd_prepare)
    p = sub.add_parser("up", help="bring up hosts (no-op for hosts already up)")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument(
        "--python", action="append", metavar="PREFIX",
        help="controller interpreter prefix (e.g. /root/.pyenv/versions/3.9.18) to show "
        "read-only in the host at the same path; repeatable",
    )
    p.add_argument(
        "--enclave", metavar="NAME",
        help="also put these hosts on one shared link (enclave NAME) where they reach each other and "
        "the controller, and nothing else",
    )
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("restart", help="reboot hosts: kill all their processes (their /run and /tmp go), "
                       "keep their disk, network and enclave, start them again")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.set_defaults(func=cmd_restart)
    p = sub.add_parser("down", help="remove hosts, whatever state they are in")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--all", action="store_true", help="every host of this state dir")
    p.set_defaults(func=cmd_down)
    p = sub.add_parser("status", help="list hosts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("inventory", help="print an Ansible YAML inventory of running hosts")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--write", metavar="FILE", help="write it to FILE instead of stdout")
    p.set_defaults(func=cmd_inventory)
    p = sub.add_parser("exec", help="run a command inside a host: exec NAME -- CMD...")
    p.add_argument("name", metavar="NAME")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_exec)
    args = parser.parse_args(argv)
    try:
        CFG = Config()
        return args.func(args)
    except TestbedError as exc:
        log(f"offline-hosts: error: {exc}")
        return 1
    except (KeyboardInterrupt, Interrupted) as exc:
        log(f"offline-hosts: interrupted ({exc or 'SIGINT'})")
        return 130


if __name__ == "__main__":
    sys.exit(main())
