"""`switchboard flags`: a name nobody defined is refused with the close matches, unless `--create`."""

from __future__ import annotations

from tests.cli.test_models import run  # noqa: F401, F811 - the fixture that runs `switchboard` in process


def test_flags_enable_refuses_an_unknown_name_unless_told_to_create_it(run) -> None:  # noqa: ANN001, F811
    status, _, err = run("flags", "enable", "ai_duo_chat_swich")
    assert status == 1 and "unknown flag 'ai_duo_chat_swich'; did you mean ai_duo_chat_switch" in err and "--create" in err
    status, _, err = run("flags", "disable", "zzzz")
    assert status == 1 and "known flags: " in err and "ai_global_switch" in err
    assert "zzzz" not in run("flags", "list")[1] and "ai_duo_chat_swich" not in run("flags", "list")[1]  # nothing created
    status, out, err = run("flags", "enable", "my_new_flag", "--create")
    assert status == 0 and out.startswith("my_new_flag") and "on" in out, err
    assert run("flags", "disable", "my_new_flag")[0] == 0  # set once, it is known
