"""The scale-out figures in `make bench`'s table: two workers must beat one by the bar."""

from bench import run


def figures(one: float, two: float, four: float) -> dict:
    def rates(value: float) -> dict:
        return {"median": value, "min": value, "max": value}

    return {
        "jobs": 10_000,
        "endpoints": ["slurm", "slurm-b"],
        "summary": {
            str(n): {"submitted_per_s": rates(v), "polled_per_s": rates(2 * v)}
            for n, v in ((1, one), (2, two), (4, four))
        },
    }


def test_two_workers_are_held_to_the_bar_and_four_are_recorded():
    rows = run.table_rows({"scaleout": figures(one=1000, two=1500, four=1400)})
    assert [r["figure"].split(",")[1].strip() for r in rows] == [
        "1 worker(s)",
        "2 worker(s)",
        "4 worker(s)",
    ] * 2
    two = [r for r in rows if "2 worker(s)" in r["figure"]]
    assert all(r["met"] is True and r["ratio"] == 1.5 for r in two)
    assert all(r["met"] is None for r in rows if "2 worker(s)" not in r["figure"])
    assert "jobs submitted per second" in rows[0]["figure"] and rows[0]["unit"] == "/s"


def test_two_workers_short_of_the_bar_are_not_met():
    rows = run.table_rows({"scaleout": figures(one=1000, two=1100, four=900)})
    assert [r["met"] for r in rows if "2 worker(s)" in r["figure"]] == [False, False]
    assert "1,100 /s" in run.render(rows)
