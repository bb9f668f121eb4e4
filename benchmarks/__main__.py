"""``python -m benchmarks [options]`` is ``twin compare [options]``: the side-by-side benchmark.

Afterwards, where a Chromium is installed, the top of the report (the verdict) is saved as
``OUT/verdict.png`` (1,400 px wide), so that a CI artifact shows what a reader sees first."""

import shutil
import subprocess
import sys
from pathlib import Path

from twin.cli import main


def screenshot(out: Path) -> Path | None:
    """``out/verdict.png``: the report's first screen in headless Chromium, or None without one."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    page = out / "report.html"
    if chromium is None or not page.exists():
        return None
    png = out / "verdict.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={out / '.chromium-profile'}", "--window-size=1400,1000",
                    "--virtual-time-budget=10000", f"--screenshot={png}", page.resolve().as_uri()],
                   capture_output=True, timeout=300)
    shutil.rmtree(out / ".chromium-profile", ignore_errors=True)
    return png if png.exists() else None


if __name__ == "__main__":
    args = sys.argv[1:]
    rc = main(["compare", *args])
    if rc == 0:
        out = Path(args[args.index("--out") + 1]) if "--out" in args else Path("compare-out")
        shot = screenshot(out)
        if shot is not None:
            print(f"wrote {shot} (the report's first screen)")
    sys.exit(rc)
