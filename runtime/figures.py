"""How the reports write energy figures: three significant figures without exponents, a typical value with its
range, ratios as a range."""


def number(x: float) -> str:
    """Three significant figures, with thousands separators instead of an exponent."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def micro(joules: float) -> str:
    return f"{number(joules * 1e6)} uJ"


def spread(joules: dict) -> str:
    """A typical figure with its range: `0.754 uJ (0.493-1.24)`; a measured figure, one value, without."""
    if joules["low"] == joules["typical"] == joules["high"]:
        return micro(joules["typical"])
    return f"{micro(joules['typical'])} ({number(joules['low'] * 1e6)}-{number(joules['high'] * 1e6)})"


def ratios(ratio: dict) -> str:
    return f"{number(ratio['low'])}-{number(ratio['high'])}x"


def named_range(figure: dict) -> dict:
    """A GPU variant's {low, value, high} as {low, typical, high}."""
    return {"low": figure["low"], "typical": figure["value"], "high": figure["high"]}


GPU_COLUMNS = ("kernels", "precision", "batch 1", "best batch", "at the best batch")


def gpu_variant_rows(detail: dict) -> list[tuple[str, str, str, str, str]]:
    """Each way the GPU ran the model (GPU_COLUMNS), in uJ per image: modelled, typical (low-high); measured, the
    figure read (its variants named `way_precision`)."""
    if detail["source"] == "measured":
        return [(way.replace("_", " "), precision, micro(figures["j_per_image_batch1"]), f"{figures['best_batch']:,}",
                 micro(figures["j_per_image_best"]))
                for key, figures in detail.get("variants", {}).items() for way, _, precision in [key.rpartition("_")]]
    return [(variant["variant"].replace("_", " "), variant["precision"], spread(named_range(variant["batch1"])),
             f"{variant['best']['batch']:,}", spread(named_range(variant["best"])))
            for variant in detail.get("variants", {}).values()]
