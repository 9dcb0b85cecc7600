"""Draw the README's pictures into docs/img/: the CLI's scan table and a chart.

    python docs/make_images.py            # the demo universe in a temporary directory

``scan.png`` is what ``technic scan --demo`` prints on a terminal (the cluster line, the
finished progress bars, the top rows, the status line), rendered by Rich and drawn with Pillow;
``chart.png`` is the top-ranked ticker's last 120 bars with SMA 20/50, Bollinger Bands (20, 2σ)
and RSI(14), drawn with matplotlib (the notebooks draw the same chart with Bokeh).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import font_manager
from PIL import Image, ImageDraw, ImageFont
from rich.console import Console, Group
from rich.text import Text

from pipeline import BarStore, Settings, indicators, load_bars, run_scan
from pipeline.cli import DEMO_DAYS, DEMO_END, DEMO_SEED, DEMO_TICKERS, _progress, _table
from pipeline.cluster import client_session, describe
from pipeline.scan import STAGES
from pipeline.sources.synthetic import generate_universe

OUT = Path(__file__).resolve().parent / "img"
BACKGROUND, FOREGROUND, BOLD = (30, 30, 36), (210, 210, 210), (250, 250, 250)
FONT_SIZE, PAD = 14, 16


def terminal_png(renderables: list, path: Path, width: int = 150) -> None:
    """Render Rich ``renderables`` as a terminal of ``width`` columns into a PNG."""
    console = Console(width=width, force_terminal=True, color_system="truecolor", record=True)
    lines = console.render_lines(Group(*renderables), console.options, pad=False)
    regular = ImageFont.truetype(font_manager.findfont("DejaVu Sans Mono"), FONT_SIZE)
    heavy = font_manager.FontProperties(family="DejaVu Sans Mono", weight="bold")
    bold = ImageFont.truetype(font_manager.findfont(heavy), FONT_SIZE)
    cell_w = regular.getlength("M")
    cell_h = int(FONT_SIZE * 1.35)
    columns = max(sum(len(s.text) for s in line) for line in lines)
    image = Image.new(
        "RGB", (int(columns * cell_w) + 2 * PAD, len(lines) * cell_h + 2 * PAD), BACKGROUND
    )
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        x = PAD
        for segment in line:
            style = segment.style
            color = FOREGROUND
            if style is not None and style.color is not None and not style.color.is_default:
                color = style.color.get_truecolor()
            elif style is not None and style.bold:
                color = BOLD
            font = bold if style is not None and style.bold else regular
            draw.text((x, PAD + row * cell_h), segment.text, font=font, fill=tuple(color))
            x += len(segment.text) * cell_w
    image.save(path, optimize=True)


def scan_picture(store: Path, data: Path) -> tuple[pd.DataFrame, Path]:
    settings = Settings(data_dir=data, use_redis=False, max_workers="2", dashboard_address=":8787")
    with client_session(settings) as client:
        run_scan(store, client=client, settings=settings)  # warm: what a second run looks like
        bar = _progress()
        tasks = {s: bar.add_task(s.replace("_", " "), total=None) for s in STAGES}

        def report(stage: str, done: int, total: int) -> None:
            bar.update(tasks[stage], completed=done, total=total)

        result = run_scan(store, client=client, settings=settings, progress=report)
        where = describe(client)
    for task in bar.tasks:  # finished bars; sub-second stages show 0:00:00 on a terminal too
        task.start_time = task.stop_time = task.finished_time = 0.0
    json_path, parquet_path = result.write(data / "snapshots")
    terminal_png(
        [
            Text("$ TECHNIC_CLUSTER=local technic scan --demo", style="bold"),
            Text.from_markup(f"[bold]Cluster:[/] {where}"),
            bar.get_renderable(),
            _table(result.table, 15),
            Text(result.snapshot["log"]),
            Text(f"Snapshot: ~/.technic/snapshots/{json_path.name} and {parquet_path.name}"),
        ],
        OUT / "scan.png",
    )
    return result.table, OUT / "scan.png"


def chart_picture(store: Path, ticker: str, days: int = 120) -> Path:
    bars = load_bars(store, tickers=[ticker]).compute()
    close = bars["close"].to_numpy()
    upper, _, lower = indicators.bbands(close, 20, 2.0)
    frame = bars.assign(
        sma20=indicators.sma(close, 20),
        sma50=indicators.sma(close, 50),
        bb_upper=upper,
        bb_lower=lower,
        rsi14=indicators.rsi(close, 14),
    ).tail(days)
    x = np.arange(len(frame))
    up = (frame["close"] >= frame["open"]).to_numpy()
    colors = np.where(up, "#26a69a", "#ef5350")
    fig, (ax, ax_rsi) = plt.subplots(
        2, 1, figsize=(10, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.fill_between(x, frame["bb_lower"], frame["bb_upper"], color="steelblue", alpha=0.12,
                    label="Bollinger 20, 2σ")  # fmt: skip
    ax.vlines(x, frame["low"], frame["high"], color=colors, lw=0.8)
    body_lo = np.minimum(frame["open"], frame["close"])
    body_hi = np.maximum(frame["open"], frame["close"])
    ax.bar(x, body_hi - body_lo, bottom=body_lo, color=colors, width=0.7)
    ax.plot(x, frame["sma20"], color="darkorange", lw=1.3, label="SMA 20")
    ax.plot(x, frame["sma50"], color="purple", lw=1.3, label="SMA 50")
    ax.set_title(f"{ticker} (demo universe): daily bars, SMA 20/50, Bollinger Bands, RSI(14)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.25)
    ax_rsi.plot(x, frame["rsi14"], color="black", lw=1)
    for level in (30, 70):
        ax_rsi.axhline(level, color="grey", ls="--", lw=0.8)
    ax_rsi.set_ylim(0, 100)
    ax_rsi.set_ylabel("RSI")
    ax_rsi.grid(alpha=0.25)
    ticks = x[:: max(len(x) // 6, 1)]
    ax_rsi.set_xticks(ticks, [f"{d:%Y-%m-%d}" for d in frame["date"].iloc[ticks]], fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "chart.png", dpi=90)
    plt.close(fig)
    return OUT / "chart.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=DEMO_TICKERS)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        store, data = Path(tmp) / "demo", Path(tmp) / "data"
        demo = generate_universe(args.tickers, DEMO_DAYS, seed=DEMO_SEED, end=DEMO_END)
        BarStore(store).write(demo.bars, demo.universe, merge=False)
        table, scan_png = scan_picture(store, data)
        chart_png = chart_picture(store, str(table.index[0]))
    for path in (scan_png, chart_png):
        print(f"{path}: {path.stat().st_size / 1000:.0f} kB")


if __name__ == "__main__":
    main()
