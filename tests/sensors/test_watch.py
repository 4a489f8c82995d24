"""The tick's decisions on plain values: baselines, thresholds, cool-downs, unreadable tables, and
run keys that never repeat over random change sequences with restarts between ticks."""

from __future__ import annotations

import random

import pytest

from sensors.watch import Cursor, Reading, Rules, Unreadable, advance

SOURCES = {"m1": frozenset({"pg/a"}), "m2": frozenset({"pg/a", "s3/b"}), "m3": frozenset({"s3/b"})}


def tick(cursor, readings, rules=None, now=0.0, sources=SOURCES):
    return advance(cursor, readings, sources, rules or Rules(), now)


def test_first_sight_is_a_baseline_and_a_change_requests_exactly_the_downstream_models():
    first = tick(Cursor(), {"pg/a": Reading("v1"), "s3/b": Reading("w1")})
    assert first.retrains == () and set(first.first_seen) == {"pg/a", "s3/b"}
    second = tick(first.cursor, {"pg/a": Reading("v2"), "s3/b": Reading("w1")}, now=1)
    assert second.changed == ("pg/a",)
    assert {r.model for r in second.retrains} == {"m1", "m2"}
    quiet = tick(second.cursor, {"pg/a": Reading("v2"), "s3/b": Reading("w1")}, now=2)
    assert quiet.retrains == () and quiet.changed == ()


def test_same_cursor_and_readings_give_the_same_run_keys():
    base = tick(Cursor(), {"pg/a": Reading("v1"), "s3/b": Reading("w1")}).cursor
    readings = {"pg/a": Reading("v2"), "s3/b": Reading("w2")}
    again = Cursor.from_json(base.to_json())
    keys = [r.run_key for r in tick(base, readings, now=5).retrains]
    assert keys == [r.run_key for r in tick(again, readings, now=99).retrains]
    assert len(set(keys)) == 3


def test_threshold_accumulates_changes_until_they_are_large_enough():
    rules = Rules(threshold=0.1)
    only = {"m1": frozenset({"pg/a"})}
    cursor = tick(Cursor(), {"pg/a": Reading("v0", 100, 1000)}, rules, sources=only).cursor
    small = tick(cursor, {"pg/a": Reading("v1", 150, 1000)}, rules, sources=only)
    assert small.retrains == ()
    assert "5.00%" in small.waits[0].reason  # said which fraction and why it waits
    enough = tick(small.cursor, {"pg/a": Reading("v2", 210, 1000)}, rules, sources=only)
    assert [r.model for r in enough.retrains] == ["m1"]
    assert enough.retrains[0].changed == {"pg/a": pytest.approx(0.11)}
    # counted afresh from the retrain on
    after = tick(enough.cursor, {"pg/a": Reading("v3", 250, 1000)}, rules, sources=only)
    assert after.retrains == ()


def test_a_silo_that_cannot_count_changes_counts_any_change_as_whole():
    rules = Rules(threshold=0.5)
    only = {"m3": frozenset({"s3/b"})}
    cursor = tick(Cursor(), {"s3/b": Reading("w0")}, rules, sources=only).cursor
    result = tick(cursor, {"s3/b": Reading("w1")}, rules, sources=only)
    assert result.retrains[0].changed == {"s3/b": None}


def test_a_reset_counter_counts_as_a_whole_change():
    rules = Rules(threshold=0.5)
    only = {"m1": frozenset({"pg/a"})}
    cursor = tick(Cursor(), {"pg/a": Reading("v0", 500, 1000)}, rules, sources=only).cursor
    result = tick(cursor, {"pg/a": Reading("v1", 3, 1000)}, rules, sources=only)
    assert result.retrains[0].changed == {"pg/a": 1.0}


def test_cool_down_delays_a_retrain_without_losing_it():
    rules = Rules(cooldown_s=60)
    only = {"m1": frozenset({"pg/a"})}
    c = tick(Cursor(), {"pg/a": Reading("v0")}, rules, 0, only).cursor
    first = tick(c, {"pg/a": Reading("v1")}, rules, 10, only)
    assert len(first.retrains) == 1
    held = tick(first.cursor, {"pg/a": Reading("v2")}, rules, 30, only)
    assert held.retrains == () and "cool-down for 40 s" in held.waits[0].reason
    still = tick(held.cursor, {"pg/a": Reading("v2")}, rules, 60, only)
    assert still.retrains == ()
    released = tick(still.cursor, {"pg/a": Reading("v2")}, rules, 71, only)
    assert len(released.retrains) == 1
    assert released.retrains[0].run_key != first.retrains[0].run_key


def test_an_unreadable_table_keeps_its_entry_and_reports_why():
    c = tick(Cursor(), {"pg/a": Reading("v0"), "s3/b": Reading("w0")}).cursor
    down = tick(c, {"pg/a": Unreadable("connection refused"), "s3/b": Reading("w1")})
    assert down.errors == {"pg/a": "connection refused"}
    assert down.cursor.tables["pg/a"] == c.tables["pg/a"]
    assert {r.model for r in down.retrains} == {"m2", "m3"}
    back = tick(down.cursor, {"pg/a": Reading("v1"), "s3/b": Reading("w1")})
    assert {r.model for r in back.retrains} == {"m1", "m2"}  # the change made while down is seen


def test_many_changes_in_one_tick_give_one_run_per_model():
    many = {f"pg/t{i}": frozenset({f"pg/t{j}" for j in range(i, i + 5)}) for i in range(50)}
    tables = {f"pg/t{i}" for i in range(55)}
    c = tick(Cursor(), {t: Reading("0") for t in tables}, sources=many).cursor
    result = tick(c, {t: Reading("1") for t in tables}, sources=many)
    assert sorted(r.model for r in result.retrains) == sorted(many)
    assert len({r.run_key for r in result.retrains}) == 50


@pytest.mark.parametrize("seed", range(40))
def test_random_changes_and_restarts_never_repeat_a_run_key_nor_lose_a_change(seed):
    """Dagster keeps a tick's cursor only when the tick completes and drops a run request whose
    key it has seen. Simulate ticks with random changes, counters, cool-downs, silos going down,
    and restarts that lose a tick's cursor (the tick is evaluated again, perhaps after more
    changes): every run Dagster launches must be for a new state of the model's sources (a
    repeated key would be a silently lost retrain), and when the changes stop, every model ends
    up requested for its sources' final state."""
    rng = random.Random(seed)
    tables = [f"pg/t{i}" for i in range(4)] + [f"s3/f{i}" for i in range(3)]
    sources = {
        f"m{i}": frozenset(rng.sample(tables, rng.randint(1, 3))) for i in range(rng.randint(1, 5))
    }
    rules = Rules(threshold=rng.choice([0.0, 0.2]), cooldown_s=rng.choice([0, 5, 20]))
    version = dict.fromkeys(tables, 0)
    counts = dict.fromkeys(tables, 0)
    committed = Cursor()
    launched: dict[str, str] = {}  # run key → model (Dagster's de-duplication)
    states: dict[str, list[tuple]] = {m: [] for m in sources}
    now = 0.0

    def readings(down: set[str]):
        return {
            t: Unreadable("down")
            if t.split("/")[0] in down
            else Reading(
                str(version[t]),
                counts[t] if t.startswith("pg") else None,
                100 if t.startswith("pg") else None,
            )
            for t in tables
        }

    for _ in range(120):
        now += rng.choice([1, 3, 10])
        for t in rng.sample(tables, rng.randint(0, 3)):
            version[t] += 1
            counts[t] += rng.randint(1, 40)
        down = {"pg"} if rng.random() < 0.1 else set()
        result = advance(committed, readings(down), sources, rules, now)
        for retrain in result.retrains:
            if retrain.run_key in launched:
                continue  # a replay after a restart: Dagster already launched it
            launched[retrain.run_key] = retrain.model
            entry = result.cursor.tables
            state = tuple(
                sorted((t, entry[t].seq, entry[t].version) for t in sources[retrain.model])
            )
            assert state not in states[retrain.model], "a model retrained twice on one state"
            states[retrain.model].append(state)
        if rng.random() < 0.2:
            continue  # the process died before the cursor was stored: evaluate again
        committed = Cursor.from_json(result.cursor.to_json())

    # The changes stop; past any cool-down, a tick with no threshold catches up on what waited.
    quiet = Rules(threshold=0.0, cooldown_s=0.0)
    final = advance(committed, readings(set()), sources, quiet, now + 1_000)
    for retrain in final.retrains:  # a key seen before is the lost tick's run: same state
        launched.setdefault(retrain.run_key, retrain.model)
    settled = advance(final.cursor, readings(set()), sources, quiet, now + 2_000)
    assert settled.retrains == () and settled.waits == ()
    for model, upstream in sources.items():
        seen = final.cursor.models[model].seen
        assert all(seen[t][0] == final.cursor.tables[t].seq for t in upstream), model
        assert model in launched.values() or all(version[t] == 0 for t in upstream)


def test_rules_refuse_nonsense():
    with pytest.raises(ValueError, match="threshold"):
        Rules(threshold=1.5)
    with pytest.raises(ValueError, match="cooldown_s"):
        Rules(cooldown_s=-1)


def test_an_older_cursor_format_starts_afresh():
    assert Cursor.from_json('{"format": 0, "tables": {}}') == Cursor()
    assert Cursor.from_json(None) == Cursor()


def test_tables_and_models_no_longer_in_the_graph_are_forgotten():
    c = tick(Cursor(), {"pg/a": Reading("v0"), "s3/b": Reading("w0")}).cursor
    later = tick(c, {"pg/a": Reading("v0")}, sources={"m1": frozenset({"pg/a"})}).cursor
    assert set(later.tables) == {"pg/a"} and set(later.models) == {"m1"}
