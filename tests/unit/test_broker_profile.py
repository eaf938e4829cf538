"""Reading where the broker's work went: readings parsed, work per process, kinds."""

from __future__ import annotations

from bench.broker_profile import Reading, kind_of, parse_reading, work_by_process


def test_a_reading_is_parsed_line_by_line_and_unnamed_processes_have_no_name() -> None:
    text = (
        "<0.10.0>\t{rabbit_channel,init,1}\t[]\t1200\n"
        "<0.11.0>\t{ra_log_wal,init,1}\tra_log_wal\t50\n"
        "not a process line\n"
    )
    assert parse_reading(text) == [
        Reading("<0.10.0>", "{rabbit_channel,init,1}", "", 1200),
        Reading("<0.11.0>", "{ra_log_wal,init,1}", "ra_log_wal", 50),
    ]


def test_work_is_counted_from_the_first_reading_and_processes_that_came_later_count_whole() -> None:
    first = [Reading("<0.1.0>", "{rabbit_channel,init,1}", "", 1_000)]
    second = [
        Reading("<0.1.0>", "{rabbit_channel,init,1}", "", 4_000),
        Reading("<0.2.0>", "{osiris_writer,init,1}", "", 700),
    ]
    third = [Reading("<0.1.0>", "{rabbit_channel,init,1}", "", 9_000)]  # <0.2.0> ended
    work = work_by_process([first, second, third])
    assert {pid: done for pid, (_, done) in work.items()} == {"<0.1.0>": 8_000, "<0.2.0>": 700}


def test_each_process_falls_in_the_kind_its_module_names() -> None:
    assert kind_of("{rabbit_channel,init,1}").startswith("channels")
    assert kind_of("{osiris_writer,init,1}").startswith("stream writers")
    assert kind_of("{rabbit_prequeue,init,1}").startswith("classic queues")
    assert kind_of("{ra_server_proc,init,1}").startswith("quorum queues")
    assert kind_of("{rabbit_mgmt_metrics_collector,init,1}") == "management statistics"
    assert kind_of("{proc_lib,init_p,5}") == "other"
