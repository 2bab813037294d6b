"""A sweep's plot (DIR/sweep.png: joules per image against quality, images/s against LUTs, the Pareto-optimal points
joined) and its page (DIR/sweep.html: self-contained like the build report, every point a row linking to its
build's report, the Pareto-optimal ones marked)."""
from html import escape
from pathlib import Path

from undense.runtime.figures import micro, number
from undense.runtime.report import STYLE, embedded_png, table

SWEEP_PLOT = "sweep.png"
SWEEP_PAGE = "sweep.html"
PANELS = (("energy_quality", "quality_to_float", "j_per_image", "quality (share of the float model's score)",
           "energy per image (uJ)", 1e6),
          ("speed_area", "lut", "images_per_second", "LUTs", "images per second", 1.0))
WIDE = 20  # an axis whose values span more than this factor is drawn on a log scale
SWEEP_STYLE = "table.sweep td { white-space: nowrap; } table.sweep td .missing { white-space: normal; }"
MARKS = {"energy_quality": "energy", "speed_area": "speed"}  # fewest joules at its quality; most images/s for its LUTs


def plot(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [p for p in report["points"] if not p["failure"]]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for axis, (front, x, y, x_label, y_label, scale) in zip(axes, PANELS, strict=True):
        shown = [p for p in points if p["figures"].get(x) is not None and p["figures"].get(y) is not None]
        optimal = sorted((p for p in shown if front in p["pareto"]), key=lambda p: p["figures"][x])
        axis.scatter([p["figures"][x] for p in shown], [p["figures"][y] * scale for p in shown], color="#9aa9c4",
                     label="design point")
        axis.plot([p["figures"][x] for p in optimal], [p["figures"][y] * scale for p in optimal], "o-",
                  color="#c44e52", label="Pareto-optimal")
        for p in shown:
            axis.annotate(f"{p['options']['bits']}b {p['options']['target']}",
                          (p["figures"][x], p["figures"][y] * scale), fontsize=7, xytext=(4, 4),
                          textcoords="offset points", color="#222" if front in p["pareto"] else "#888")
        for values, scaled in (([p["figures"][x] for p in shown], axis.set_xscale),
                               ([p["figures"][y] for p in shown], axis.set_yscale)):
            if values and min(values) > 0 and max(values) / min(values) > WIDE:
                scaled("log")
        axis.set_xlabel(x_label)
        axis.set_ylabel(y_label)
        axis.legend(fontsize=8)
    figure.suptitle(f"{Path(report['model']).name}: {len(points)} of {len(report['points'])} points ran")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def cells(point: dict, directory: Path) -> list[str]:
    f = point["figures"]
    mark = ", ".join(MARKS[name] for name in point["pareto"])
    link = (f'<a href="{escape(point["report"])}">{escape(point["label"])}</a>'
            if point["report"] and (directory / point["report"]).is_file() else escape(point["label"]))
    if point["failure"]:
        failure = point["failure"]
        return [link, "", f'<span class="missing">{escape(failure["kind"])} at {escape(str(failure["stage"]))}: '
                f'{escape(failure["message"])}</span>', "", "", "", "", ""]
    quality = f.get("quality_to_float")
    timing = ("" if "fmax_mhz" not in f else
              f"{number(f['fmax_mhz'])} MHz{'' if f['timing_met'] else ' (not met)'}")
    return [link, f"<b>{mark}</b>" if mark else "", micro(f["j_per_image"]),
            f"{f['images_per_second']:,.0f}", f"{f['lut']:,}" if f.get("lut") is not None else "",
            timing or f"{number(f['clock_mhz'])} MHz (not placed)",
            f"{quality:.1%}" if quality is not None else escape(f.get("quality_note") or ""),
            "cached" if point["cached"] else f"{point['wall_s']:,.0f} s"]


def render(report: dict, directory: Path) -> str:
    summary = report["summary"]
    best = next((p for p in report["points"] if p["key"] == summary["best_within_quality"]), None)
    verdict = ("No point reached a quality within "
               f"{summary['quality_within']:.0%} of the float model's." if best is None else
               f"Fewest joules per image at a quality within {summary['quality_within']:.0%} of the float model's: "
               f"<b>{escape(best['label'])}</b>, {micro(best['figures']['j_per_image'])} an image, "
               f"{best['figures']['quality_to_float']:.1%} of the float model's quality.")
    ordered = sorted(report["points"], key=lambda p: (bool(p["failure"]), p["figures"].get("j_per_image") or 0))
    rows = [cells(point, directory) for point in ordered]
    title = f"undense sweep: {escape(Path(report['model']).name)}"
    failed = ", ".join(f"{count} {kind}" for kind, count in summary["failed_by_kind"].items())
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{STYLE}{SWEEP_STYLE}</style></head><body><h1>{title}</h1>"
            f"<p class=\"quote\">{verdict}</p>"
            f"<p>{summary['points']} points: {summary['ran']} ran, {summary['cached']} from earlier runs, "
            f"{summary['failed']} failed{f' ({escape(failed)})' if failed else ''}; {summary['wall_s']:,.0f} s on "
            f"{escape(report['engine'])}. Quality: the score of {summary['quality_images']:,} images drawn by the "
            "golden executor (which the RTL equals bit for bit) over the float model's on the same latents. "
            + ("" if report["settings"]["synthesize"] else "Not placed and routed (--no-synth): resources and energy "
               "from the compiler's estimate, at the target's clock. ")
            + "Each point links to its build's report.</p>"
            f"<img class=\"plot\" alt=\"Pareto fronts\" src=\"{embedded_png(directory / SWEEP_PLOT)}\">"
            + table(["point", "Pareto-optimal for", "energy per image", "images/s", "LUTs", "clock", "quality", "run"],
                    rows, "sweep")
            + "</body></html>\n")


def write_page(report: dict, directory: Path) -> Path:
    plot(report, directory / SWEEP_PLOT)
    path = directory / SWEEP_PAGE
    path.write_text(render(report, directory))
    return path
