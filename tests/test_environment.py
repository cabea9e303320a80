"""environment.yml (conda) and pyproject.toml (pip) must list the same packages."""

import tomllib

import yaml

from palr_utils.core.paths import project_root


def test_environment_yml_matches_pyproject():
    root = project_root()
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pip_requirements = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    environment = yaml.safe_load((root / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1
    assert set(pip_sections[0]) == pip_requirements


def test_torch_is_pinned_to_the_small_cpu_build():
    project = tomllib.loads((project_root() / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in project["dependencies"]
