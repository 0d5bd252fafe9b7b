"""The compact table a run prints at its end and keeps as ``summary.txt`` (rewritten after every section)."""

from __future__ import annotations

from typing import Any

HEADLINE_KEYS = ("images_per_s", "s_per_image", "steps_per_s", "per_image_gib", "total_s", "compile_s", "first_call_with_compile_s",
                 "speedup_vs_fp32")


def summary_table(report: dict[str, Any]) -> str:
    """One line per measured figure: section, key, and its headline number."""
    lines = [f"{'section':26} {'measurement':38} value"]
    for section, figures in report.get("sections", {}).items():
        for key, value in figures.items():
            if key == "time_box_s":
                continue
            headline = f"{key.upper()}: {str(value)[:100]}" if key in ("error", "skipped") else _headline(value)
            if headline is not None:
                lines.append(f"{section:26} {key:38} {headline}")
    return "\n".join(lines)


def _headline(value: Any) -> str | None:
    if isinstance(value, dict):
        if "error" in value:
            return "ERROR " + str(value["error"])[:80]
        if "skipped" in value:
            return "skipped: " + str(value["skipped"])[:80]
        parts = [f"{key}={value[key]}" for key in HEADLINE_KEYS if key in value]
        return ", ".join(parts) or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None
