"""Cut the query into fragments: every connected same-silo subtree, joins included, runs in its silo.

Runs after sqlglot has isolated each table into a subquery with its projections and predicates
pushed in. Then, top down:

1. a query (or subquery) whose tables all live in one silo, that references nothing outside
   itself, and that the silo's dialect and capabilities can express, becomes one fragment —
   aggregates, ORDER BY and LIMIT go with it;
2. otherwise each source is cut on its own (recursing into derived tables and subqueries), and
   sources of the same silo that join each other on an equality (inner joins, or left joins
   whose preserved side is in the group) merge into one fragment with their join conditions;
   an OR or inequality across two groups stays above them (it would cross their rows).

A join a silo can price (PostgreSQL's EXPLAIN) and prices above moving its tables
(``cost.priced_out``) is not pushed: that silo's tables are then cut one by one and joined by
the embedded engine, and the plan's ``decisions`` say why.

What remains is the residual query over placeholders ``__f0``, ``__f1``, ... that the embedded
engine runs over the fragments' Arrow results.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from fed_assets.query.context import PlanContext
from fed_assets.query.cost import join_expands, priced_out
from fed_assets.query.functions import calls_any, missing_functions
from fed_assets.query.tree import (
    conjuncts,
    entries,
    is_inner,
    join_conjuncts,
    outer_refs,
    refs,
    scoped_columns,
    set_from,
    where_conjuncts,
)

# The dialect the planner's trees are in (the embedded engine's).
PLANNING_DIALECT = "duckdb"


def merge_same_silo(expression: exp.Expression, context: PlanContext) -> exp.Expression:
    """Replace silo-local subtrees by fragment placeholders (see module docstring)."""
    silo = pushable_silo(expression, context)
    if silo is not None:
        fragment_id = context.cut(silo, expression)
        return exp.select("*").from_(exp.to_table(fragment_id))
    _cut(expression, context)
    return expression


def pushable_silo(node: exp.Expression, context: PlanContext) -> str | None:
    """The silo that can run all of ``node`` by itself, or None."""
    tables = list(node.find_all(exp.Table))
    silos = {t.args["db"].name for t in tables if t.args.get("db")}
    if len(silos) != 1 or any(not t.args.get("db") for t in tables):
        return None  # several silos, placeholders, or table functions
    (silo_name,) = silos
    silo = context.silos[silo_name]
    if not _self_contained(node):
        return None
    needs = {
        "join": any(s.args.get("joins") for s in node.find_all(exp.Select)),
        "aggregate": any(node.find_all(exp.AggFunc)) or any(node.find_all(exp.Group)),
        "order_by": any(node.find_all(exp.Order)),
        "limit": any(node.find_all(exp.Limit)),
        "filter": any(node.find_all(exp.Where)),
    }
    if any(need and not silo.supports(ability) for ability, need in needs.items()):
        return None
    if needs["join"] and silo_name in context.kept_local:
        return None  # the silo priced its joins above moving their tables
    missing = missing_functions(silo)
    if silo.dialect == PLANNING_DIALECT and not missing:
        return silo_name  # the tree is already in the silo's dialect: nothing it cannot say
    try:
        sql = render(node, silo_name, context)
    except SqlglotError:
        return None  # something the silo's dialect cannot say: evaluate it above
    if calls_any(sql, missing):
        return None  # a function the silo turned out not to have: evaluate it above
    if needs["join"]:
        why = priced_out(node, silo_name, sql, context)
        if why is not None:
            context.kept_local[silo_name] = why
            return None
    return silo_name


def render(tree: exp.Expression, silo_name: str, context: PlanContext) -> str:
    """``tree`` as SQL in the silo's dialect, with the silo's own table and column spellings.

    The spellings are swapped into ``tree`` for the generation and swapped back after: copying
    the tree instead cost a third of the planning time of a query with a large WHERE clause.
    """
    silo = context.silos[silo_name]
    swapped: list[tuple[exp.Expression, exp.Expression]] = []  # (original, stand-in)
    tables: dict[str, tuple[str, str]] = {}
    try:
        for table in list(tree.find_all(exp.Table)):
            if not table.args.get("db"):
                continue  # a CTE of the fragment's own (share_subqueries)
            key = table.name
            actual, _ = context.spelling[(silo_name, key)]
            alias = table.alias_or_name
            tables[alias] = (silo_name, key)
            target = silo.table_expression(actual)
            target.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
            table.replace(target)
            swapped.append((table, target))
        for column in list(tree.find_all(exp.Column)):
            owner = tables.get(column.table)
            if owner is not None:
                _, columns = context.spelling[owner]
                original = column.this
                spelt = exp.to_identifier(columns.get(column.name, column.name), quoted=True)
                original.replace(spelt)
                swapped.append((original, spelt))
        return tree.sql(dialect=silo.dialect, unsupported_level=ErrorLevel.RAISE, identify=True)
    finally:
        for original, stand_in in reversed(swapped):
            stand_in.replace(original)


def _self_contained(node: exp.Expression) -> bool:
    """Whether every column reference in ``node`` points at a source defined inside it."""
    defined = {
        source.alias_or_name
        for source in node.find_all(exp.Table, exp.Subquery)
        if source.alias_or_name
    }
    return all(not c.table or c.table in defined for c in node.find_all(exp.Column))


def _cut(node: exp.Expression, context: PlanContext) -> None:
    if isinstance(node, exp.Subquery):
        node = node.this
    if isinstance(node, exp.SetOperation):
        for side in (node.left, node.right):
            _cut_child(side, context)
        return
    if not isinstance(node, exp.Select):
        return
    for source, _ in entries(node):
        if isinstance(source, exp.Subquery):
            _cut_child(source, context)
        elif isinstance(source, exp.Table) and source.args.get("db"):
            _cut_table(node, source, context)
    # Merge first: a condition whose subquery reads only the same silo moves into the merged
    # fragment whole; only the subqueries left behind are cut on their own.
    _merge_components(node, context)
    for sub in _expression_subqueries(node):
        _cut_child(sub, context)


def _cut_child(node: exp.Expression, context: PlanContext) -> None:
    """Make ``node`` (a derived table, set-operation side or expression subquery) a fragment if
    one silo can run it, else cut inside it."""
    inner = node.this if isinstance(node, exp.Subquery) else node
    silo = pushable_silo(inner, context)
    if silo is None:
        _cut(inner, context)
        return
    if isinstance(node, exp.Subquery) and isinstance(node.parent, (exp.From, exp.Join)):
        fragment_id = context.cut(silo, inner)
        alias = node.args.get("alias") or exp.TableAlias(this=exp.to_identifier(fragment_id))
        placeholder = exp.to_table(fragment_id)
        placeholder.set("alias", alias)
        node.replace(placeholder)
        return
    fragment_id = context.cut(silo, inner.copy())
    inner.replace(exp.select("*").from_(exp.to_table(fragment_id)))


def _cut_table(select: exp.Select, table: exp.Table, context: PlanContext) -> None:
    """A base table whose query cannot go to its silo whole: fetch only the columns used."""
    alias = table.alias_or_name
    used = sorted({c.name for c in scoped_columns(select, {alias})})
    projections = [exp.column(c, table=alias, quoted=True).as_(c, quoted=True) for c in used]
    tree = exp.select(*(projections or [exp.true().as_("__row")])).from_(table.copy())
    fragment_id = context.cut(table.args["db"].name, tree)
    placeholder = exp.to_table(fragment_id)
    placeholder.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
    table.replace(placeholder)


def _expression_subqueries(select: exp.Select) -> list[exp.Expression]:
    """Subqueries in the select list, join conditions, WHERE, HAVING (not FROM/JOIN sources) of
    ``select``."""
    found = []
    ons = [join.args.get("on") for join in select.args.get("joins") or []]
    for key in ("expressions", "on", "where", "having", "qualify"):
        value = ons if key == "on" else select.args.get(key)
        for part in value if isinstance(value, list) else [value]:
            if part is None:
                continue
            for sub in part.find_all(exp.Select):
                parent_select = sub.parent_select if sub.parent_select is not sub else None
                enclosing = sub.parent
                while enclosing is not None and not isinstance(enclosing, exp.Select):
                    enclosing = enclosing.parent
                if enclosing is select or parent_select is select:
                    found.append(sub.parent if isinstance(sub.parent, exp.Subquery) else sub)
    return found


def _movable(cond: exp.Expression, members: set[str], silo: str, context: PlanContext) -> bool:
    """Whether ``cond`` can run inside the merged fragment: it reads only its members and, in any
    subquery, only base tables of the same silo (never another fragment), and calls no function
    the silo is known to lack."""
    used = outer_refs(cond)
    tables = list(cond.find_all(exp.Table))
    missing = missing_functions(context.silos[silo])
    return (
        bool(used)
        and used <= members
        and all(t.args.get("db") is not None and t.args["db"].name == silo for t in tables)
        and not (missing and calls_any(cond.sql(dialect=context.silos[silo].dialect), missing))
    )


def _equi_join(cond: exp.Expression) -> bool:
    """Whether ``cond`` equates expressions of two different sources: only such a condition
    joins two same-silo groups into one fragment. An OR across them (TPC-H Q07's nation pair)
    or an inequality would make the silo return their filtered cross product (4.8 M rows where
    the two sides hold 800 and 12,000), so it is evaluated above, over the two fragments."""
    if not isinstance(cond, exp.EQ):
        return False
    left, right = refs(cond.left), refs(cond.right)
    return len(left) == 1 and len(right) == 1 and left != right


def _expands(cond: exp.Expression, sources, context: PlanContext) -> bool:
    """An equi-join between two fragments that statistics say multiplies rows."""
    if not (
        isinstance(cond, exp.EQ)
        and isinstance(cond.left, exp.Column)
        and isinstance(cond.right, exp.Column)
    ):
        return False
    placeholders = {
        s.alias_or_name: s.name
        for s, _ in sources
        if isinstance(s, exp.Table) and s.name in context.cuts
    }
    if cond.left.table not in placeholders or cond.right.table not in placeholders:
        return False
    return join_expands(cond, placeholders, context)


def _merge_components(select: exp.Select, context: PlanContext) -> None:
    sources = entries(select)
    if len(sources) < 2:
        return
    silo_of: dict[str, str] = {}
    for source, join in sources:
        mergeable = is_inner(join) or (join.args.get("side") or "").upper() == "LEFT"
        if (
            isinstance(source, exp.Table)
            and source.name in context.cuts
            and mergeable
            and context.cuts[source.name].silo not in context.kept_local
        ):
            silo_of[source.alias_or_name] = context.cuts[source.name].silo

    inner_conditions = join_conjuncts(select)

    parent = {alias: alias for alias in silo_of}

    def find(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    left_members: dict[str, exp.Join] = {}
    for source, join in sources[1:]:
        if (join.args.get("side") or "").upper() == "LEFT" and source.alias_or_name in silo_of:
            left_members[source.alias_or_name] = join
    inner_aliases = [a for a in silo_of if a not in left_members]
    for cond in inner_conditions:
        used = refs(cond)
        if (
            len(used) >= 2
            and used <= set(inner_aliases)
            and not cond.find(exp.Table)
            and _equi_join(cond)
        ):
            silos = {silo_of[r] for r in used}
            if len(silos) == 1 and not _expands(cond, sources, context):
                first, *rest = sorted(used)
                for other in rest:
                    parent[find(other)] = find(first)
    for alias, join in left_members.items():
        others = refs(join.args.get("on") or exp.true()) - {alias}
        roots = {find(o) for o in others if o in inner_aliases}
        if (
            len(roots) == 1
            and others <= set(inner_aliases)
            and silo_of[next(iter(others))] == silo_of[alias]
        ):
            parent[alias] = roots.pop()

    groups: dict[str, list[str]] = {}
    for alias in silo_of:
        groups.setdefault(find(alias), []).append(alias)
    components = [
        members
        for members in groups.values()
        if len(members) >= 2
        or (
            members[0] not in left_members
            and any(
                cond.find(exp.Select) and _movable(cond, set(members), silo_of[members[0]], context)
                for cond in inner_conditions
            )
        )
    ]
    for members in components:
        _merge(select, members, left_members, context)


def _merge(
    select: exp.Select, members: list[str], left_members: dict[str, exp.Join], ctx: PlanContext
) -> None:
    """Replace ``members`` (placeholder aliases of one silo) by one merged fragment."""
    member_set = set(members)
    sources = entries(select)
    order = [e for e in sources if e[0].alias_or_name in member_set]
    inner = [e for e in order if e[0].alias_or_name not in left_members]
    lefts = [e for e in order if e[0].alias_or_name in left_members]

    # Conditions that only talk about members move into the fragment.
    moved: list[exp.Expression] = []
    leftover: list[exp.Expression] = []
    silo = ctx.cuts[inner[0][0].name].silo
    for cond in where_conjuncts(select):
        (moved if _movable(cond, member_set, silo, ctx) else leftover).append(cond)
    for _source, join in inner:
        if join is None:
            continue
        for cond in conjuncts(join.args.get("on")):
            (moved if _movable(cond, member_set, silo, ctx) else leftover).append(cond)

    tree = exp.select()
    for i, (source, _) in enumerate(inner):
        derived = exp.Subquery(
            this=ctx.cuts.pop(source.name).tree,
            alias=exp.TableAlias(this=exp.to_identifier(source.alias_or_name, quoted=True)),
        )
        tree = tree.from_(derived) if i == 0 else tree.join(derived, join_type="CROSS")
    for source, join in lefts:
        derived = exp.Subquery(
            this=ctx.cuts.pop(source.name).tree,
            alias=exp.TableAlias(this=exp.to_identifier(source.alias_or_name, quoted=True)),
        )
        tree = tree.join(derived, on=join.args.get("on").copy(), join_type="LEFT")
    if moved:
        tree = tree.where(exp.and_(*[c.copy() for c in moved], copy=False), copy=False)

    # Rebuild the residual: the fragment takes its first member's place.
    fragment_id = ctx.cut(silo, tree)
    placeholder = exp.to_table(fragment_id)
    placeholder.set("alias", exp.TableAlias(this=exp.to_identifier(fragment_id, quoted=True)))
    new_entries: list[tuple[exp.Expression, exp.Join | None]] = []
    placed = False
    for source, join in sources:
        if source.alias_or_name not in member_set:
            new_entries.append((source, join))
        elif not placed:
            placed = True
            new_entries.append(
                (placeholder, None if join is None else exp.Join(this=placeholder, kind="CROSS"))
            )
    set_from(select, new_entries[0][0])
    rest = []
    for source, join in new_entries[1:]:
        if join is None:
            join = exp.Join(this=source, kind="CROSS")
        elif is_inner(join):  # inner joins become CROSS + WHERE (equivalent)
            leftover += conjuncts(join.args.get("on"))
            join.set("on", None)
            join.set("kind", "CROSS")
        rest.append(join)
    select.set("joins", rest or None)
    select.set("where", exp.Where(this=exp.and_(*leftover, copy=False)) if leftover else None)

    # Columns the residual reads from members now come from the fragment.
    outputs: dict[tuple[str, str], str] = {}
    for column in scoped_columns(select, member_set):
        if column.table in member_set:
            name = f"{column.table}__{column.name}"
            outputs[(column.table, column.name)] = name
            column.replace(exp.column(name, table=fragment_id, quoted=True))
    projections = [
        exp.column(col, table=alias, quoted=True).as_(name, quoted=True)
        for (alias, col), name in sorted(outputs.items())
    ]
    tree.set("expressions", projections or [exp.true().as_("__row")])
