"""compare_chart.py RATIOS_TSV OUT_PNG SUBTITLE — the bar chart of Benchmarks/compare.sh's ratios.

One horizontal bar per figure (the median ratio, log scale), a whisker for the min-max over the alternated pairs and
a tick at the goal; green where the goal is met. Above 1 always means Alexandria is faster or within its goal.
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

tsv, out, subtitle = sys.argv[1], sys.argv[2], sys.argv[3]
rows = list(csv.DictReader(open(tsv), delimiter="\t"))
if not rows:
    sys.exit("no ratios to chart")
rows.reverse()  # first figure on top
names = [r["figure"] for r in rows]
ratio = [float(r["ratio"]) for r in rows]
lo = [float(r["min"]) for r in rows]
hi = [float(r["max"]) for r in rows]
goal = [float(r["goal"]) for r in rows]
met = [v >= g for v, g in zip(ratio, goal)]

fig, ax = plt.subplots(figsize=(9, 0.38 * len(rows) + 1.4), dpi=80)
y = range(len(rows))
ax.barh(y, ratio, color=["#3a923a" if m else "#c8553d" for m in met], height=0.6)
ax.errorbar(ratio, y, xerr=[[v - a for v, a in zip(ratio, lo)], [b - v for v, b in zip(ratio, hi)]],
            fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
ax.scatter(goal, y, marker="|", s=260, color="black", zorder=3, label="goal")
for i, v in enumerate(ratio):
    ax.text(v * 1.04, i, f"{v:.2f}×", va="center", fontsize=8)
ax.set_xscale("log")
ax.axvline(1, color="grey", linewidth=0.6)
ax.set_yticks(list(y), names, fontsize=8)
ax.set_xlabel("ratio to the baseline measured in the same run (log scale; > 1: Alexandria faster / goal met)",
              fontsize=8)
ax.set_title(f"Alexandria, Benchmarks/compare.sh\n{subtitle}", fontsize=9)
ax.legend(loc="best", fontsize=8)
ax.set_xlim(min(min(lo), min(goal)) / 1.6, max(max(hi), max(goal)) * 2.2)
fig.tight_layout()
fig.savefig(out)
