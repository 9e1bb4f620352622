"""Starting a proof boot's QEMU when its forwarded SSH port was taken after it was found free (real QEMU, no
guest: `-machine none`). QEMU refuses a port that any socket holds, a client connection's source port
included, which a busy machine hands out all the time; verify --power-cycle finds the port a whole first boot
before it binds it."""

import io
import socket

import pytest

from builder.runner import Runner, stop
from builder.verify import guest_process
from builder.verify.boot import diagnose_missing_report

pytestmark = pytest.mark.integration


def qemu(port: int) -> list[str]:
    nic = f"user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{port}-:22" if port else "none"
    return ["qemu-system-x86_64", "-machine", "none", "-display", "none", "-nodefaults", "-nic", nic]


def test_a_port_taken_by_a_client_connection_is_replaced_by_a_free_one(tmp_path, monkeypatch):
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    taken = client.getsockname()[1]                      # a source port: nothing listens on it
    ports = iter([taken])
    monkeypatch.setattr(guest_process, "free_port", lambda: next(ports, None) or socket_port())
    said = io.StringIO()
    log = tmp_path / "qemu.log"
    process, port = guest_process.spawn_guest(Runner(out=said), qemu, True, log)
    try:
        assert process is not None and process.poll() is None, guest_process.qemu_said(log)
        assert port != taken
        assert f"Could not set up host forwarding rule 'tcp:127.0.0.1:{taken}-:22'" in log.read_text()
        assert f"could not forward port {taken}" in said.getvalue()
    finally:
        if process is not None:
            stop(process, grace=2)
        client.close()
        server.close()


def socket_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_any_other_early_exit_is_the_boots_result_and_verify_says_what_qemu_said(tmp_path):
    log = tmp_path / "qemu.log"
    process, port = guest_process.spawn_guest(Runner(out=io.StringIO()),
                                              lambda port: qemu(port) + ["-device", "no-such-device"], True, log)
    assert process is not None and process.wait(timeout=20) != 0 and port
    assert log.read_text().count("qemu-system-x86_64") == 1     # started once: not a port problem
    check = diagnose_missing_report("", 1.0, exit_code=1, qemu=guest_process.qemu_said(log))
    assert check.detail.startswith("QEMU exited before the guest ran:") and "no-such-device" in check.detail


def test_without_forwarding_the_boot_is_started_once_and_not_waited_for(tmp_path):
    log = tmp_path / "qemu.log"
    process, port = guest_process.spawn_guest(Runner(out=io.StringIO()), qemu, False, log)
    try:
        assert port == 0 and process is not None and process.poll() is None
    finally:
        if process is not None:
            stop(process, grace=2)
