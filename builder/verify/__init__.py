"""Stage 6, verify: boot a built image in QEMU and judge the guest's report against the plan."""
