"""Hostile configuration files: a YAML alias bomb (issue 14)."""

# 1.2 kB that expands to ~10^9 values: nine levels of nine aliases each, under an invalid key
# (so that a validator reaching it would print, i.e. expand, the whole value).
LEVELS = "abcdefghi"
BOMB = "\n".join(
    [f"{LEVELS[0]}: &{LEVELS[0]} [" + ", ".join([f'"{"lol" * 30}"'] * 7) + "]"]
    + [
        f"{name}: &{name} [" + ", ".join([f"*{LEVELS[i]}"] * 9) + "]"
        for i, name in enumerate(LEVELS[1:])
    ]
    + [
        "datasets:",
        "  hcplike: {entry: roi_timeseries, path: p, phenotype: q.tsv, role: pretrain,",
        f"            not_a_key: *{LEVELS[-1]}}}",
        f"results_dir: *{LEVELS[-1]}",
    ]
)
