"""The README's examples run: each shop as three processes behind nginx, walked through
sign-in, a cart filled through round-robin nginx, and log out everywhere."""
import os
import subprocess
import sys

import pytest

from cluster import node_binary

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("app", ["hummingbird", "vapor"])
def test_the_example_shop_runs_behind_nginx(app):
    env = dict(os.environ, EXAMPLE_BIN_DIR=os.path.dirname(node_binary()))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "Examples", "run.py"), app, "--check"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{app} example failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    assert "apple,pear,plum" in result.stdout
    assert "2 sessions" in result.stdout
