"""How the reports write energy figures: three significant figures without exponents, a typical value with its
range, ratios as a range."""


def number(x: float) -> str:
    """Three significant figures, with thousands separators instead of an exponent."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def micro(joules: float) -> str:
    return f"{number(joules * 1e6)} uJ"


def spread(joules: dict) -> str:
    """A typical figure with its range: `0.754 uJ (0.493-1.24)`."""
    return f"{micro(joules['typical'])} ({number(joules['low'] * 1e6)}-{number(joules['high'] * 1e6)})"


def ratios(ratio: dict) -> str:
    return f"{number(ratio['low'])}-{number(ratio['high'])}x"


def named_range(figure: dict) -> dict:
    """A GPU variant's {low, value, high} as {low, typical, high}."""
    return {"low": figure["low"], "typical": figure["value"], "high": figure["high"]}
