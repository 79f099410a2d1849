#!/usr/bin/env python3
"""Search at 1 M messages in one merchant (docs/benchmarks.md, Search).

Needs `psql` reaching an empty PostgreSQL database (PGHOST, PGUSER, PGDATABASE as usual).
Builds the search column exactly as migrations/0017_search_text.sql and
tenants/migrations/0023_message_search.sql do, fills 1,000,000 generated messages (half
Chinese, half English, from 40-word vocabularies: denser than real chat, so the numbers are
pessimistic), then runs the queries of src/chat/store/search.rs (both steps) for 20 searches,
7 times each, and prints per-search medians and p50/p95 over all runs (the first run of each
is dropped as warm-up). Also prints the index size and the insert cost with and without it.

    python3 bench/scripts/search_bench.py [--rows 1000000]
"""
import argparse, pathlib, re, statistics, subprocess, sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
ZH = "我 想要 白色 的 台灯 请问 今天 能 发货 吗 谢谢 订单 退货 快递 多少钱 有没有 黑色 红色 尺寸 质量 客服 你好 明天 到货 优惠 包邮 颜色 大号 小号 地址 修改 付款 发票 保修 型号 库存 价格 一下 可以 什么时候".split()
EN = "hello order shipping white lamp desk return refund price discount tomorrow today color black size large small invoice warranty address change payment stock when can you please thanks where is my parcel delivery model quality help question cheap free express".split()
SEARCHES = ["白色", "台灯", "发货", "保修发票", "白色的台灯", "红色大号", "什么时候到货", "多少钱", "快递", "你好",
            "ship", "white lamp", "refund", "warranty invoice", "parcel delivery", "zzz", "cheap express", "he",
            "model quality help", "退货 refund"]


def psql(script, rows=False):
    args = ["psql", "-v", "ON_ERROR_STOP=1", "-q"] + (["-t", "-A"] if rows else [])
    p = subprocess.run(args, input="\\timing on\n" + script, capture_output=True, text=True)
    if p.returncode:
        sys.exit(p.stderr)
    return p.stdout


def times(out):
    return [float(t) for t in re.findall(r"Time: ([\d.]+) ms", out)]


def setup(n):
    function = (ROOT / "migrations/0017_search_text.sql").read_text()
    column = (ROOT / "tenants/migrations/0023_message_search.sql").read_text()
    words = lambda ws: "array[" + ",".join(f"'{w}'" for w in ws) + "]"
    psql(f"""
drop schema if exists search_bench cascade;
drop function if exists public.kefu_search_text(text);
{function}
create schema search_bench;
set search_path = search_bench;
create table visitors (id bigint primary key, public_id text not null, name text not null);
create table conversations (id bigint primary key, visitor_id bigint not null, status text not null);
create table messages (id bigserial primary key, conversation_id bigint not null, sender_kind text not null default 'visitor',
                       kind text not null default 'text', body text not null, created_at timestamptz not null default now());
insert into visitors select g, 'v' || g, 'Visitor ' || g from generate_series(0, {n // 8}) g;
insert into conversations select g, g, 'open' from generate_series(0, {n // 8}) g;
insert into messages (conversation_id, body)
select g / 8, case when g % 2 = 0
  then (select string_agg(({words(ZH)})[1 + floor(random() * {len(ZH)})::int], '') from generate_series(1, 4 + (g % 9)))
  else (select string_agg(({words(EN)})[1 + floor(random() * {len(EN)})::int], ' ') from generate_series(1, 4 + (g % 9))) end
from generate_series(1, {n}) g;
{column}
create table plain (like messages including defaults);
vacuum analyze;
""")
    sizes = psql("select pg_size_pretty(pg_relation_size('search_bench.messages_search_idx')), "
                 "pg_size_pretty(pg_total_relation_size('search_bench.messages'));", rows=True)
    print("GIN index, table with index:", sizes.split("Time")[0].strip())
    # Insert cost: 200,000 of the messages again, into a copy without and with the search column.
    out = psql("""
set search_path = search_bench;
create temp table src as select conversation_id, body from messages order by random() limit 200000;
create table plain_copy (like plain including defaults including indexes);
create table searched (like messages including defaults including indexes including generated);
insert into plain_copy (conversation_id, body) select * from src;
insert into searched (conversation_id, body) select * from src;
""")
    t = times(out)
    print(f"insert 200,000: without search {t[-2]:.0f} ms ({t[-2] * 5 / 1000:.1f} µs/message), with {t[-1]:.0f} ms ({t[-1] * 5 / 1000:.1f} µs/message)")


def hits_sql(q, window):
    parts = []
    for w in q.split():
        if re.search("[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]", w):
            parts.append(f"phraseto_tsquery('simple', public.kefu_search_text('{w}'))")
        else:
            parts.append(f"to_tsquery('simple', '{w}:*')")
    tq = "(" + " && ".join(parts) + ")"
    source = f"(select * from messages order by id desc limit {window})" if window else "messages"
    return f"""with hits as (select m.id, m.conversation_id, m.sender_kind, m.body, m.created_at, ts_rank(m.search, {tq}) as rank
  from {source} m where m.search @@ ({tq}) and m.kind in ('text','image','file','product','card') order by m.id desc limit 200)
select h.id, h.conversation_id, h.body, v.public_id, v.name, c.status from hits h
  join conversations c on c.id = h.conversation_id join visitors v on v.id = c.visitor_id
 order by h.rank desc, h.id desc limit 20;"""


def run():
    results = {}
    for q in SEARCHES:
        runs = []
        for _ in range(7):
            out = psql("set search_path = search_bench;\n" + hits_sql(q, 5000), rows=True)
            total = times(out)[-1]
            found = len([l for l in out.splitlines() if l and not l.startswith("Time:") and l != "SET"])
            if found < 20:
                out = psql("set search_path = search_bench; begin;"
                           " select set_config('enable_indexscan', 'off', true), set_config('enable_seqscan', 'off', true);\n"
                           + hits_sql(q, None) + "\ncommit;", rows=True)
                total += times(out)[-2]
            runs.append(total)
        results[q] = sorted(runs[1:])
    everything = sorted(t for v in results.values() for t in v)
    for q, v in results.items():
        print(f"{q:22s} median {statistics.median(v):6.1f} ms   max {max(v):6.1f} ms")
    p = lambda f: everything[min(len(everything) - 1, int(len(everything) * f))]
    print(f"all {len(everything)} runs: p50 {p(0.5):.1f} ms, p95 {p(0.95):.1f} ms, max {everything[-1]:.1f} ms")


if __name__ == "__main__":
    a = argparse.ArgumentParser()
    a.add_argument("--rows", type=int, default=1_000_000)
    a.add_argument("--no-setup", action="store_true")
    args = a.parse_args()
    if not args.no_setup:
        setup(args.rows)
    run()
