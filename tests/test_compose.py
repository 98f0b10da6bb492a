"""docker-compose.yml, the Dockerfile and the cost worker's seccomp profile.

No Docker engine is needed: `docker compose config --quiet` (or Debian's `docker-compose`)
validates the file, the structure is checked against the trust boundary of docs/deploy.md,
and the seccomp profile is applied to a real process that runs a real cost job in the sandbox.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import Settings, get_settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
SECCOMP = REPO / "docker" / "seccomp-cost-worker.json"
COST_WORKERS = ("worker-cost", "worker-cost-cpu", "worker-preflight")


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    found = shutil.which("docker-compose")
    return [found] if found else None


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def test_compose_config_is_valid() -> None:
    command = _compose_command()
    if command is None:
        subprocess.run([str(REPO / "scripts" / "ensure-docker-compose.sh")], check=False)
        command = _compose_command()
    if command is None:
        pytest.skip(
            "neither `docker compose` nor `docker-compose` is installed, and "
            "scripts/ensure-docker-compose.sh could not install Debian's docker-compose"
        )
    for profiles in ([], ["--profile", "flower", "--profile", "cpu"]):
        done = subprocess.run(
            [*command, "-f", str(COMPOSE), *profiles, "config", "--quiet"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr


def test_services_and_their_dependencies(services: dict[str, Any]) -> None:
    assert {"postgres", "redis", "migrate", "server", "worker-score", "worker-cost"} <= set(
        services
    )
    assert services["flower"]["profiles"] == ["flower"]
    assert services["postgres"]["image"].startswith("postgres:15.")
    assert services["redis"]["image"].startswith("redis:7.")
    assert "--appendonly yes" in " ".join(services["redis"]["command"])
    for name in ("postgres", "redis"):
        assert "healthcheck" in services[name]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "paretoboard db upgrade" in services["migrate"]["command"][-1]
    assert "paretoboard tasks import" in services["migrate"]["command"][-1]
    for name in ("server", "worker-score"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["redis"]["condition"] == "service_healthy"
    assert services["server"]["command"][:2] == ["paretoboard", "serve"]
    assert "--workers" in services["server"]["command"]
    for name, spec in services.items():
        assert spec.get("restart") in ("unless-stopped", "always", "no"), name
        assert ":latest" not in str(spec.get("image", "")), name


def _stages() -> dict[str, tuple[str, str]]:
    """The Dockerfile's stages by name: what each is built FROM, and its text."""
    stages = {}
    for stage in re.split(r"^FROM ", DOCKERFILE.read_text(), flags=re.M)[1:]:
        parent, as_, name = stage.split(None, 3)[:3]
        assert as_ == "AS", stage[:60]
        stages[name] = (parent, stage)
    return stages


def _chain(stages: dict[str, tuple[str, str]], name: str) -> tuple[str, list[str]]:
    """The base image a stage starts from, and the texts of the stages it builds on, its own last."""
    texts: list[str] = []
    while name in stages:
        name, text = stages[name]
        texts.insert(0, text)
    return name, texts


def test_images_install_their_locks(services: dict[str, Any]) -> None:
    """The web service runs on the base install; each image installs a lock of requirements/."""
    stages = {name: text for name, (_, text) in _stages().items()}
    assert "--require-hashes -r requirements/lock-web.txt" in stages["build-web"]
    assert "torch==" not in stages["build-web"]
    for build in ("build-cpu", "build-cuda"):
        assert "--require-hashes -r requirements/lock-worker.txt" in stages[build]
    assert "COPY --from=build-web /opt/venv" in stages["web"]
    assert "COPY --from=build-cpu /opt/venv" in stages["app"]
    for name in ("migrate", "server"):
        assert services[name]["build"]["target"] == "web", name
    assert services["worker-score"]["build"]["target"] == "app"


def test_only_the_web_service_is_published(services: dict[str, Any]) -> None:
    published = {name: spec["ports"] for name, spec in services.items() if "ports" in spec}
    assert set(published) == {"server", "flower"}
    assert all(str(p).startswith("127.0.0.1:") for p in published["flower"])


def test_cost_worker_holds_only_the_broker_url(services: dict[str, Any]) -> None:
    for name in COST_WORKERS:
        spec = services[name]
        assert spec["secrets"] == ["paretoboard_broker"], name
        env = spec["environment"]
        assert not any(k.startswith(("PARETOBOARD_DB", "PARETOBOARD_SECRET_KEY")) for k in env)
        # the upload folder only read-only: a verification run reads the weights file by hash
        # (docs/verification.md); the sandbox sees only its job folder
        mounts = [str(v) for v in spec.get("volumes", []) if "appdata" in str(v)]
        assert all(m.endswith(":ro") for m in mounts), (name, mounts)
        assert "--concurrency" in spec["command"]
        assert spec["command"][spec["command"].index("--concurrency") + 1] == "1"


def test_web_and_score_workers_share_the_object_store(services: dict[str, Any]) -> None:
    """Uploads go to the S3-compatible store (MinIO here), so web and score workers may run on
    several hosts; the store is on the backend network only, and cost workers hold no key."""
    minio = services["minio"]
    assert minio["image"].startswith("minio/minio:RELEASE.")
    assert minio["networks"] == ["backend"]
    assert "blobdata:/data" in minio["volumes"]
    for name in ("migrate", "server", "worker-score"):
        env = services[name]["environment"]
        assert env["PARETOBOARD_STORAGE__BACKEND"] == "s3", name
        assert "http://minio:9000" in env["PARETOBOARD_STORAGE__S3_ENDPOINT_URL"], name
        assert "paretoboard_storage" in services[name]["secrets"], name
    # `paretoboard db upgrade` creates the bucket: the store must be up first
    assert services["migrate"]["depends_on"]["minio"]["condition"] == "service_healthy"
    for name in COST_WORKERS:
        assert "PARETOBOARD_STORAGE__BACKEND" not in services[name]["environment"], name


def test_cost_network_reaches_only_redis(compose: dict[str, Any]) -> None:
    services = compose["services"]
    on_cost = {name for name, spec in services.items() if "cost" in spec.get("networks", [])}
    assert on_cost == {"redis", *COST_WORKERS}
    for name in COST_WORKERS:
        assert services[name]["networks"] == ["cost"]
    assert compose["networks"]["cost"]["internal"] is True
    assert compose["networks"]["backend"]["internal"] is True


def test_cost_worker_confinement(services: dict[str, Any]) -> None:
    for name in COST_WORKERS:
        spec = services[name]
        assert spec["cap_drop"] == ["ALL"]
        assert "cap_add" not in spec
        assert "privileged" not in spec
        opts = spec["security_opt"]
        assert "no-new-privileges:true" in opts
        profile = [o.split(":", 1)[1] for o in opts if o.startswith("seccomp:")]
        assert profile == ["./docker/seccomp-cost-worker.json"]
        assert (REPO / profile[0]).is_file()
        assert spec["read_only"] is True
        for limit in ("mem_limit", "pids_limit", "cpus"):
            assert spec[limit], (name, limit)
    gpu = services["worker-cost"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert services["worker-cost"]["environment"]["PARETOBOARD_LIMITS__COST_DEVICE"] == "cuda"
    assert "--cpu-only" in services["worker-cost-cpu"]["command"]


def test_workers_yield_the_cpu_to_the_web(services: dict[str, Any]) -> None:
    """Each container is a cgroup of its own: the workers' niceness orders only their own
    processes, so their containers weigh less than the server's (Docker's default is 1024)."""
    assert "cpu_shares" not in services["server"]
    for name in ("worker-score", *COST_WORKERS):
        shares = str(services[name]["cpu_shares"])
        assert shares == "${PARETOBOARD_WORKER_CPU_SHARES:-256}", name


def test_dockerfile_pins_and_users() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base.group(1))
    torch_pin = next(
        d
        for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]["worker"]
        if d.startswith("torch==")
    )
    assert f"ARG TORCH_VERSION={torch_pin.removeprefix('torch==')}" in text
    assert "whl/cpu" in text
    assert re.search(r"whl/cu\d+", text)
    stages = _stages()
    # web and app share one runtime stage (environment, user, command); each adds only its venv
    for name, build in (("web", "build-web"), ("app", "build-cpu")):
        parent, own = stages[name]
        assert parent == "runtime", name
        assert re.findall(r"^[A-Z]+", own, re.M) == ["COPY", "COPY"], name
        assert f"COPY --from={build} /app /app" in own, name
    assert "PARETOBOARD_MODE=production" in stages["runtime"][1]
    for name in ("web", "app", "cost-worker"):
        image, texts = _chain(stages, name)
        assert image == "${PYTHON_IMAGE}", name
        users = re.findall(r"^USER (\S+)$", "".join(texts), re.M)
        assert users, name
        assert users[-1] not in ("root", "0"), name
    # every folder the images byte-compile exists (compileall fails the build on a missing one)
    for line in re.findall(r"python -m compileall -q ([^\\&\n]+)", text):
        for folder in line.split():
            assert (REPO / folder).is_dir(), folder
    ignore = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip()]
    assert "!requirements/" in ignore
    rules = [line for line in ignore if not line.startswith("#")]
    assert rules[0] == "*"  # an allow-list: nothing (.venv, secrets/, var/) unless named
    assert not any(line.startswith(("!.venv", "!secrets", "!var")) for line in rules)


def _sandbox_under_profile(
    profile: Path, script: str, tmp: Path
) -> subprocess.CompletedProcess[str]:
    """Run `script` in a process confined by a Docker seccomp profile (via libseccomp)."""
    launcher = tmp / "launch.py"
    launcher.write_text(
        "import json, os, sys\n"
        "import pyseccomp as sc\n"
        "prof = json.load(open(sys.argv[1]))\n"
        "f = sc.SyscallFilter(sc.ERRNO(prof.get('defaultErrnoRet', 1)))\n"
        "ops = {'SCMP_CMP_NE': sc.NE, 'SCMP_CMP_EQ': sc.EQ}\n"
        "for rule in prof['syscalls']:\n"
        "    allow = rule['action'] == 'SCMP_ACT_ALLOW'\n"
        "    action = sc.ALLOW if allow else sc.ERRNO(rule.get('errnoRet', 1))\n"
        "    args = [sc.Arg(a['index'], ops[a['op']], a['value']) for a in rule.get('args', [])]\n"
        "    for name in rule['names']:\n"
        "        f.add_rule(action, name, *args)\n"
        "f.load()\n"
        "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
    )
    code = tmp / "script.py"
    code.write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    return subprocess.run(
        [sys.executable, str(launcher), str(profile), str(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
        check=False,
    )


COST_JOB = """
import ctypes, os, sys
from pathlib import Path
from core.settings import LimitsSettings, Settings, StorageSettings
from worker.counting_stage import CostJob, run_cost_job

libc = ctypes.CDLL(None, use_errno=True)
assert libc.ptrace(0, 0, 0, 0) == -1 and ctypes.get_errno() == 1, "ptrace is not refused"
base = Path(sys.argv[0]).parent / "jobs"
settings = Settings(
    storage=StorageSettings(data_dir=base, jobs_dir=base),
    limits=LimitsSettings(sandbox_wall_seconds=120),
)
ids = [[101, 7, 102], [101, 8, 9, 10, 102]]
job = CostJob(
    entries=[{"key": "static:T", "kind": "static", "lengths": [3, 5], "token_ids": ids,
              "first_segments": None}],
    sizes={"static:T": 2},
)
run = run_cost_job(Path(%r).read_bytes(), job, settings, device="cpu")
print(run.failure or run.output.entries["static:T"].per_sample_flops)
"""


def test_seccomp_profile_lets_the_sandbox_count(tmp_path: Path, sandbox_jobs_dir: Path) -> None:
    """The worker, bubblewrap and torch inside it all work under the profile; ptrace does not."""
    tmp = sandbox_jobs_dir / f"seccomp-{os.getpid()}"
    tmp.mkdir(mode=0o755)
    model = REPO / "tests" / "models" / "tiny_static.py"
    done = _sandbox_under_profile(SECCOMP, COST_JOB % str(model), tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    # Captured in the sandbox, counted by the trusted counter: 560 L + 66 FLOPs (tiny_static.py:
    # 2 x 16x16 MACs, 16 bias adds, tanh and mean per token; 2 x 16x2 MACs + 2 once), L = 3, 5.
    assert done.stdout.strip() == str([560 * 3 + 66, 560 * 5 + 66])


def test_without_its_additions_the_sandbox_cannot_start(
    tmp_path: Path, sandbox_jobs_dir: Path
) -> None:
    """What Docker's default profile does to bubblewrap: the profile's additions are needed."""
    profile = json.loads(SECCOMP.read_text())
    profile["syscalls"] = [r for r in profile["syscalls"] if "unshare" not in r["names"]]
    stripped = tmp_path / "stripped.json"
    stripped.write_text(json.dumps(profile))
    tmp = sandbox_jobs_dir / f"seccomp-stripped-{os.getpid()}"
    tmp.mkdir(mode=0o755)
    done = _sandbox_under_profile(
        stripped, "from worker.sandbox import check_sandbox\ncheck_sandbox()\n", tmp
    )
    assert done.returncode != 0
    assert "namespace" in done.stderr


def test_settings_read_the_secret_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What compose mounts at /run/secrets: one file per setting, a section as JSON."""
    (tmp_path / "paretoboard_db").write_text('{"url": "postgresql+psycopg://u:pw@db:5432/x"}\n')
    (tmp_path / "paretoboard_broker").write_text(
        '{"url": "redis://:pw@redis:6379/0", "result_backend": "redis://:pw@redis:6379/1"}'
    )
    (tmp_path / "paretoboard_secret_key").write_text("k" * 40 + "\n")
    for key in list(os.environ):
        if key.startswith("PARETOBOARD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PARETOBOARD_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("PARETOBOARD_MODE", "production")
    monkeypatch.setenv("PARETOBOARD_DB__ECHO", "true")  # env and files merge
    get_settings.cache_clear()
    try:
        settings: Settings = get_settings()
    finally:
        get_settings.cache_clear()
    assert settings.database_url == "postgresql+psycopg://u:pw@db:5432/x"
    assert settings.db.echo is True
    assert settings.broker.url.get_secret_value() == "redis://:pw@redis:6379/0"
    assert settings.secret_key.get_secret_value() == "k" * 40
