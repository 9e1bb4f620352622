"""The sandbox for a kernel's own build code (its Makefiles, scripts and Kconfig helpers come from the
profile's source): bubblewrap gives it a view of the host with only /usr and /etc (read-only), the source
(read-only) and the directories it must write; no network; and it runs as an unprivileged user, so
it can neither read root's files nor change anything outside those directories. It starts from an empty
environment (root's, CI tokens included, never reaches it). What it leaves behind is untrusted data: the
host side (kernel.py) reads and copies nothing through a path the sandbox could have written, and checks the
installed tree before root keeps it."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

SANDBOX_UID = 65534       # nobody / nogroup: owns nothing on the host
SYSTEM_TREES = ("/usr", "/etc")
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


def _chown_tree(path: Path, uid: int) -> None:
    os.chown(path, uid, uid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, uid)


@dataclass(frozen=True)
class KbuildSandbox:
    source: Path                         # read-only inside
    writable: tuple[Path, ...]           # the O= build dir, ccache, an install staging dir

    def hand_over(self) -> None:
        """Give the writable directories to the sandbox user (before it runs)."""
        for path in self.writable:
            path.mkdir(parents=True, exist_ok=True)
            _chown_tree(path, SANDBOX_UID)

    def take_back(self, path: Path) -> None:
        """What the sandbox wrote and the host keeps (installed modules, the kernel) belongs to root again."""
        _chown_tree(path, 0)

    def argv(self, command: list[str], cwd: Path, env: Optional[dict[str, str]] = None) -> list[str]:
        """`command` run inside the sandbox, at the same paths as outside (logs and errors read the same),
        with only PATH, HOME and `env` in its environment."""
        binds = []
        for tree in SYSTEM_TREES:
            binds += ["--ro-bind", tree, tree]
        for link in ("/bin", "/sbin", "/lib", "/lib64"):   # merged /usr: links into it
            if os.path.islink(link):
                binds += ["--symlink", os.readlink(link), link]
        # bwrap would make the parents of a bind with the host parents' modes (a 0700 one would shut the
        # sandbox user out), so they are made first, traversable, in the sandbox's own tmpfs root.
        parents = sorted({str(p) for path in (self.source, *self.writable) for p in path.parents
                          if str(p) not in ("/", "/tmp")})
        for parent in parents:
            binds += ["--perms", "0755", "--dir", parent]
        binds += ["--ro-bind", str(self.source), str(self.source)]
        for path in self.writable:
            binds += ["--bind", str(path), str(path)]
        return ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                "--die-with-parent", "--dev", "/dev", "--proc", "/proc",
                "--perms", "1777", "--tmpfs", "/tmp", *binds, "--clearenv", "--setenv", "HOME", "/tmp",
                "--setenv", "PATH", SANDBOX_PATH,
                *(word for key, value in sorted((env or {}).items()) for word in ("--setenv", key, value)),
                "--chdir", str(cwd),
                "setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", *command]
