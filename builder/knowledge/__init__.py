"""Stage 2, knowledge: facts about the world a plan is checked against (distribution releases, kernel
versions, QEMU's memory layout, Kconfig fragments, the build host's apt mirror). No profile logic."""
