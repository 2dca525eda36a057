"""slurm/*.sh: syntax, shellcheck, and tune.sh's node, address, port and shutdown logic with stubs.

The stubs in tests/stubs (scontrol, srun, hostname, ip, getent, ray, python) stand in for Slurm, the
node's network configuration, Ray and the lotj environment; each records the command it receives in
$STUB_LOG. The scripts under a real Slurm: tests/test_slurm_real.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted([*(ROOT / "slurm").glob("*.sh"), *(ROOT / "slurm" / "local").glob("*.sh")])
STUBS = Path(__file__).resolve().parent / "stubs"


def test_scripts_exist():
    assert {p.name for p in SCRIPTS} >= {"tune.sh", "train.sh", "head-ip.sh", "ray-step.sh", "up.sh", "down.sh"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script):
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.parametrize("script", [*SCRIPTS, *sorted(p for p in STUBS.iterdir() if p.is_file())], ids=lambda p: p.name)
def test_shellcheck(script):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(["shellcheck", "-x", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


#: seconds after which a stub run counts as hung; the scripts wait on events (a node up, a step ended), never
#: on a clock, so this only turns a hang into a failure
HANG_GUARD = 600


def run_script(
    script: str, tmp_path: Path, args: list[str], **env: str
) -> tuple[subprocess.CompletedProcess, list[str]]:
    log = tmp_path / "stub.log"
    log.unlink(missing_ok=True)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RAY_", "LOTJ_"))}
    full_env.update(PATH=f"{STUBS}:{os.environ['PATH']}", STUB_LOG=str(log), SLURM_SUBMIT_DIR=str(ROOT))
    full_env["LOTJ_RAY_TMPDIR"] = str(tmp_path / "ray")  # the steps write their process ids there
    full_env.update(env)  # LOTJ_RAY_TMPDIR="" for tune.sh's default
    result = subprocess.run(
        ["bash", str(ROOT / "slurm" / script), *args], env=full_env, capture_output=True, text=True, timeout=HANG_GUARD
    )
    lines = log.read_text().splitlines() if log.exists() else []
    return result, lines


def index(lines: list[str], pattern: str) -> int:
    hits = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    assert hits, f"no line matches {pattern!r} in:\n" + "\n".join(lines)
    return hits[0]


TUNE_ENV = {
    "SLURM_JOB_ID": "12345",
    "SLURM_JOB_NODELIST": "gpu[07-09]",
    "SLURM_CPUS_PER_TASK": "8",
    "SLURM_GPUS_PER_TASK": "2",
    "STUB_IP_gpu07": "fe80::7 10.1.2.7",
}


def test_tune_sh_starts_head_workers_waits_sweeps_and_stops(tmp_path):
    ray_tmp = tmp_path / "ray"
    args = ["conf=smoke", "tune=arch", "sweep.num_samples=8"]
    result, lines = run_script("tune.sh", tmp_path, args, **TUNE_ENV, LOTJ_RAY_TMPDIR=str(ray_tmp))
    assert result.returncode == 0, result.stdout + result.stderr
    port = 10000 + 200 * (12345 % 250)
    address = f"10.1.2.7:{port}"
    assert "scontrol show hostnames gpu[07-09]" in lines
    assert index(lines, r"^hostname node=gpu07 --ip-address")

    ray_lines = [line for line in lines if line.startswith("ray node=")]
    head = [line for line in ray_lines if " start --head " in line]
    workers = [line for line in ray_lines if " start " in line and "--head" not in line]
    assert len(head) == 1 and "node=gpu07" in head[0]
    assert f"--node-ip-address=10.1.2.7 --port={port}" in head[0]
    assert f"--dashboard-port={port + 8} " in head[0]  # not Ray's 8265, which a second job would find taken
    assert sorted(re.search(r"node=(\S+)", w).group(1) for w in workers) == ["gpu08", "gpu09"]
    for line in head + workers:
        assert "--block" in line and "--num-cpus=8" in line and "--num-gpus=2" in line
        assert f"--temp-dir={ray_tmp} " in line
        assert f"--node-manager-port={port + 1}" in line and f"--min-worker-port={port + 20}" in line
        assert "auth=token token_chars=64" in line  # a fresh per-job token, exported to every node
    for worker in workers:
        assert f"--address={address}" in worker

    wait_head = index(lines, rf"-m tune\.cluster --address {re.escape(address)} --nodes 1\b")
    wait_all = index(lines, rf"-m tune\.cluster --address {re.escape(address)} --nodes 3\b")
    sweep = index(lines, r"-m tune\.sweep ")
    # `srun … &` lines may land after the next command's; the waits' "done" lines order the steps
    head_up = next(i for i, line in enumerate(lines) if line.startswith("stub cluster:") and i > wait_head)
    all_up = next(i for i, line in enumerate(lines) if line.startswith("stub cluster:") and i > wait_all)
    assert index(lines, r"^ray node=gpu07 .* start --head") < head_up
    for worker in ("gpu08", "gpu09"):
        assert head_up < index(lines, rf"^srun .*-w {worker} .*ray-step\.sh \S+ start --block") < all_up
        assert head_up < index(lines, rf"^ray node={worker} .* start ") < all_up
    assert all_up < sweep
    assert len(re.findall(r"--pid \d+", lines[wait_head])) == 1  # stops early if the head's step exits
    assert len(re.findall(r"--pid \d+", lines[wait_all])) == 3
    assert lines[sweep].endswith(f"-m tune.sweep conf=smoke tune=arch sweep.num_samples=8 sweep.address={address}")
    assert f"pythonpath={ROOT}" in lines[sweep]

    stopped = [line for line in lines if line.startswith("ray-stopped")]
    assert sorted(stopped) == ["ray-stopped node=gpu07", "ray-stopped node=gpu08", "ray-stopped node=gpu09"]
    assert stopped[-1] == "ray-stopped node=gpu07"  # the head goes last
    assert all(index(lines, "^" + re.escape(s) + "$") > sweep for s in stopped)
    # each through a step beside the node's (not a signal to srun, which would SIGKILL the step)
    for node in ("gpu07", "gpu08", "gpu09"):
        stop = index(lines, rf"^srun --overlap .*-w {node} .*ray-step\.sh --stop {re.escape(str(ray_tmp))}/\S*{node}")
        assert sweep < stop < index(lines, f"^ray-stopped node={node}$")
    assert not list(ray_tmp.glob("*.pid"))  # each step removed its process id file
    assert result.stdout.rstrip().endswith("tune.sh: sweep exited with status 0\ntune.sh: Ray stopped")


def test_tune_sh_jobs_get_their_own_ports_and_temp_dirs(tmp_path):
    seen = []
    for job in ("12345", "12346"):
        env = {**TUNE_ENV, "SLURM_JOB_ID": job, "LOTJ_RAY_TMPDIR": ""}  # tune.sh's default temp dir
        result, lines = run_script("tune.sh", tmp_path, ["conf=smoke"], **env)
        assert result.returncode == 0, result.stderr
        head = lines[index(lines, r"^ray .* start --head")]
        port = re.search(r"--port=(\d+)", head).group(1)
        worker_ports = re.search(r"--min-worker-port=(\d+) --max-worker-port=(\d+)", head).groups()
        temp = re.search(r"--temp-dir=(\S+)", head).group(1)
        assert re.fullmatch(rf"/tmp/ray-\S+-{job}", temp)
        Path(temp).rmdir()  # made for the steps' process id files, which are gone
        seen.append((port, worker_ports, temp))
    (p1, w1, t1), (p2, w2, t2) = seen
    assert p1 != p2 and t1 != t2
    assert int(w1[1]) < int(p2) or int(w2[1]) < int(p1)  # the two port blocks do not overlap


def test_tune_sh_sweep_failure_is_the_job_status_and_ray_still_stops(tmp_path):
    result, lines = run_script("tune.sh", tmp_path, ["conf=smoke"], **TUNE_ENV, STUB_SWEEP_RC="3")
    assert result.returncode == 3
    assert len([line for line in lines if line.startswith("ray-stopped")]) == 3


def test_tune_sh_calibrate_runs_the_calibration_against_the_cluster(tmp_path):
    args = ["calibrate", "conf=smoke", "calibrate=source", "calibrate.num_trials=64"]
    result, lines = run_script("tune.sh", tmp_path, args, **TUNE_ENV, STUB_SWEEP_RC="1")
    address = f"10.1.2.7:{10000 + 200 * (12345 % 250)}"
    driver = index(lines, r"-m tune\.calibrate ")
    assert lines[driver].endswith(
        f"-m tune.calibrate conf=smoke calibrate=source calibrate.num_trials=64 calibrate.address={address}"
    )
    assert index(lines, rf"-m tune\.cluster --address {re.escape(address)} --nodes 3\b") < driver
    assert not [line for line in lines if "-m tune.sweep" in line]
    assert result.returncode == 1  # the calibration's status is the job's
    assert len([line for line in lines if line.startswith("ray-stopped")]) == 3


def test_tune_sh_single_node_overrides_and_auth_disabled(tmp_path):
    env = {
        "SLURM_JOB_ID": "77",
        "SLURM_JOB_NODELIST": "login1",
        "SLURM_CPUS_ON_NODE": "4",
        "LOTJ_RAY_PORT_BASE": "41000",
        "LOTJ_RAY_HEAD_IP": "192.168.0.5",
        "LOTJ_RAY_TMPDIR": str(tmp_path / "r"),
        "RAY_AUTH_MODE": "disabled",
    }
    result, lines = run_script("tune.sh", tmp_path, ["conf=smoke"], **env)
    assert result.returncode == 0, result.stderr
    assert not any(line.startswith("hostname") for line in lines)  # the given head address is used
    ray_lines = [line for line in lines if line.startswith("ray node=")]
    assert len(ray_lines) == 1
    head = ray_lines[0]
    assert "node=login1" in head and "--node-ip-address=192.168.0.5 --port=41000" in head
    assert "--num-cpus=4 --num-gpus=0" in head and f"--temp-dir={tmp_path / 'r'}" in head
    assert "auth=disabled token_chars=0" in head
    assert lines[index(lines, r"-m tune\.sweep")].endswith("sweep.address=192.168.0.5:41000")
    assert len([line for line in lines if "-m tune.cluster" in line and "--nodes 1 " in line]) == 2


def test_tune_sh_runs_the_counterfactual_economies_on_the_same_cluster(tmp_path):
    args = ["counterfactuals", "conf=smoke", "--seeds", "2", "sweep.resources.gpu=1"]
    result, lines = run_script("tune.sh", tmp_path, args, **TUNE_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    address = f"10.1.2.7:{10000 + 200 * (12345 % 250)}"
    driver = lines[index(lines, r"-m lotj\.counterfactuals ")]
    assert driver.endswith(
        f"-m lotj.counterfactuals conf=smoke --seeds 2 sweep.resources.gpu=1 sweep.address={address}"
    )
    assert not any("-m tune.sweep" in line for line in lines)
    assert index(lines, rf"-m tune\.cluster --address {re.escape(address)} --nodes 3\b") < lines.index(driver)
    assert len([line for line in lines if line.startswith("ray-stopped")]) == 3


def test_tune_sh_refuses_to_run_outside_slurm(tmp_path):
    result, lines = run_script("tune.sh", tmp_path, ["conf=smoke"])
    assert result.returncode != 0 and "SLURM_JOB_ID" in result.stderr
    assert not any(line.startswith(("srun", "ray")) for line in lines)


def test_train_sh_multi_gpu_ddp(tmp_path):
    env = {"SLURM_JOB_ID": "99", "SLURM_GPUS_ON_NODE": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_CPUS_PER_TASK": "4"}
    result, lines = run_script("train.sh", tmp_path, ["conf=baseline", "out_dir=runs/mine"], **env)
    assert result.returncode == 0, result.stderr
    srun = lines[index(lines, r"^srun ")]
    assert srun == (
        "srun python -m lotj.train out_dir=runs/slurm-99 trainer.num_threads=4 logging.progress_bar=false "
        "trainer.accelerator=gpu trainer.devices=2 conf=baseline out_dir=runs/mine"
    )
    assert index(lines, r"^python .*-m lotj\.train") > index(lines, r"^srun ")


def test_train_sh_cpu_only_and_bad_task_count(tmp_path):
    result, lines = run_script("train.sh", tmp_path, ["conf=smoke"], SLURM_JOB_ID="5", SLURM_CPUS_PER_TASK="2")
    assert result.returncode == 0, result.stderr
    srun = lines[index(lines, r"^srun ")]
    assert "trainer.accelerator" not in srun and srun.endswith(
        "trainer.num_threads=2 logging.progress_bar=false conf=smoke"
    )
    env = {"SLURM_JOB_ID": "6", "SLURM_GPUS_ON_NODE": "gpu:2", "SLURM_NTASKS_PER_NODE": "3"}
    result, lines = run_script("train.sh", tmp_path, ["conf=smoke"], **env)
    assert result.returncode == 1 and "ntasks-per-node=3" in result.stderr
    assert not any(line.startswith("srun") for line in lines)


def test_tune_sh_passes_the_time_limit_signal_to_the_sweep(tmp_path):
    """sbatch --signal=B:USR1@180 reaches the batch shell; the sweep must get it (Tune then saves and stops)."""
    import signal
    import threading

    assert "#SBATCH --signal=B:USR1@" in (ROOT / "slurm" / "tune.sh").read_text()
    log = tmp_path / "stub.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RAY_", "LOTJ_"))}
    env.update(TUNE_ENV, PATH=f"{STUBS}:{os.environ['PATH']}", STUB_LOG=str(log), SLURM_SUBMIT_DIR=str(ROOT))
    env.update(STUB_SWEEP_UNTIL_USR1="1", LOTJ_RAY_TMPDIR=str(tmp_path / "ray"))
    proc = subprocess.Popen(["bash", str(ROOT / "slurm" / "tune.sh"), "conf=smoke"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    guard = threading.Timer(HANG_GUARD, proc.kill)
    guard.start()
    try:
        out = []
        for line in proc.stdout:  # the event: the sweep says it runs (end of output if the script died first)
            out.append(line)
            if line.strip() == "stub sweep running":
                break
        assert proc.poll() is None, "".join(out) + proc.stderr.read()
        proc.send_signal(signal.SIGUSR1)
        rest, err = proc.communicate()
    finally:
        guard.cancel()
    out = "".join(out) + rest
    lines = log.read_text().splitlines()
    assert "sweep got USR1" in lines
    assert proc.returncode == 1 and "sweep exited with status 1" in out, out + err
    assert len([line for line in lines if line.startswith("ray-stopped")]) == 3


@pytest.mark.parametrize(
    ("nodelist", "net", "address", "why"),
    [
        # two nodes: the host name resolves to loopback; the route to the second node picks the interface
        (
            "gpu[07-08]",
            {"STUB_IP_gpu07": "127.0.1.1", "STUB_HOST_gpu08": "127.0.0.1 10.9.0.8", "STUB_ROUTE_gpu07": "10.9.0.7"},
            "10.9.0.7",
            "source address of the route to node gpu08 (10.9.0.8)",
        ),
        # one node, host name on loopback (stock Debian/Ubuntu): the default route's source, as Ray picks
        ("login1", {"STUB_IP_login1": "127.0.1.1 ::1", "STUB_ROUTE_login1": "192.0.2.2"}, "192.0.2.2", "default route"),
        # no route at all (an isolated node): the first non-loopback IPv4 address of `hostname -I`
        ("login1", {"STUB_ALL_IP_login1": "127.0.0.1 fd00::2 172.16.0.4 10.0.0.4"}, "172.16.0.4", "hostname -I"),
        # the host name's own address wins over the default route when it is not loopback
        ("login1", {"STUB_IP_login1": "fe80::1 10.1.2.7", "STUB_ROUTE_login1": "192.0.2.2"}, "10.1.2.7", "host name"),
    ],
)
def test_tune_sh_head_address_is_never_loopback(tmp_path, nodelist, net, address, why):
    env = {"SLURM_JOB_ID": "8", "SLURM_JOB_NODELIST": nodelist, "LOTJ_RAY_TMPDIR": str(tmp_path / "ray"), **net}
    result, lines = run_script("tune.sh", tmp_path, ["conf=smoke"], **env)
    assert result.returncode == 0, result.stdout + result.stderr
    head = lines[index(lines, r"^ray .* start --head")]
    assert f"--node-ip-address={address} " in head
    assert all(f"--address={address}:" in line for line in lines if re.match(r"ray .* start --block --address", line))
    assert lines[index(lines, r"-m tune\.sweep")].endswith(f"sweep.address={address}:{10000 + 200 * 8}")
    said = next(line for line in result.stdout.splitlines() if line.startswith("tune.sh: head address"))
    assert said.startswith(f"tune.sh: head address {address}: ") and why in said


def test_tune_sh_refuses_a_head_without_an_address_other_nodes_can_reach(tmp_path):
    env = {"SLURM_JOB_ID": "9", "SLURM_JOB_NODELIST": "login1", "STUB_ALL_IP_login1": "127.0.0.1 ::1 169.254.3.3"}
    result, lines = run_script("tune.sh", tmp_path, ["conf=smoke"], **env)
    assert result.returncode == 1 and "LOTJ_RAY_HEAD_IP" in result.stderr
    assert not any(line.startswith(("ray ", "python ")) for line in lines)
    # a loopback address given by hand is refused where other nodes would have to use it
    result, lines = run_script("tune.sh", tmp_path, ["conf=smoke"], **TUNE_ENV, LOTJ_RAY_HEAD_IP="127.0.1.1")
    assert result.returncode == 1 and "loopback" in result.stderr
    assert not any(line.startswith(("ray ", "python ")) for line in lines)


def test_tune_sh_time_limit_before_the_sweep_starts_no_sweep(tmp_path):
    """A SIGUSR1 while the cluster comes up: the sweep is not started, the job fails, Ray still stops."""
    result, lines = run_script("tune.sh", tmp_path, ["conf=smoke"], **TUNE_ENV, STUB_USR1_AT_CLUSTER="1")
    assert result.returncode == 1 and "not starting it" in result.stderr
    assert not any("-m tune.sweep" in line for line in lines)
    assert len([line for line in lines if line.startswith("ray-stopped")]) == 3


def test_tune_sh_a_node_that_fails_ends_the_job_and_the_others_stop(tmp_path):
    """A worker whose Ray exits by itself: the wait for the cluster stops at once (it watches the steps), the
    job fails, and the head is still stopped."""
    env = {**TUNE_ENV, "STUB_RAY_RC_gpu08": "1", "LOTJ_RAY_TMPDIR": str(tmp_path / "ray")}
    result, lines = run_script("tune.sh", tmp_path, ["conf=smoke"], **env)
    assert result.returncode == 1
    assert "stub cluster: step" in "\n".join(lines)  # stopped by the exited step, not by a timeout
    assert not any("-m tune.sweep" in line for line in lines)
    assert "ray-stopped node=gpu07" in lines


def test_ray_step_ends_cleanly_when_asked_and_keeps_a_failing_node_status(tmp_path):
    """slurm/ray-step.sh: stopped through --stop, it exits 0 although Ray exits 1 after a SIGTERM; a Ray that
    ends by itself gives its own status."""
    import threading

    log, pidfile = tmp_path / "stub.log", tmp_path / "ray" / "ray-step-n1.pid"
    env = {**os.environ, "PATH": f"{STUBS}:{os.environ['PATH']}", "STUB_LOG": str(log), "STUB_NODE": "n1"}
    step = ROOT / "slurm" / "ray-step.sh"
    proc = subprocess.Popen(["bash", str(step), str(pidfile), "start", "--block", "--address=10.0.0.1:6379"], env=env)
    guard = threading.Timer(HANG_GUARD, proc.kill)
    guard.start()
    try:
        # the event: the stub Ray logs its start once its TERM handler is set (`ray start` prints its banner then)
        while not (log.exists() and "ray node=n1" in log.read_text()):
            assert proc.poll() is None
            threading.Event().wait(0.05)
        assert int(pidfile.read_text()) == proc.pid
        subprocess.run(["bash", str(step), "--stop", str(pidfile)], env=env, check=True, timeout=HANG_GUARD)
        assert proc.wait() == 0
    finally:
        guard.cancel()
    assert "ray-stopped node=n1" in log.read_text().splitlines() and not pidfile.exists()

    env["STUB_RAY_RC_n1"] = "3"
    done = subprocess.run(["bash", str(step), str(pidfile), "start", "--block"], env=env, timeout=HANG_GUARD)
    assert done.returncode == 3
    # --stop of a step that never started (no process id file) is a no-op
    subprocess.run(["bash", str(step), "--stop", str(tmp_path / "none.pid")], env=env, check=True, timeout=HANG_GUARD)
