"""The operator's commands, in process (`cli.main.main`), against a real database."""

from __future__ import annotations

import json

import pytest

from cli.main import main


@pytest.fixture
def run(database_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # noqa: ANN001, ANN201
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))

    def invoke(*args: str, mode: str = "self_managed") -> tuple[int, str, str]:
        monkeypatch.setenv("SWITCHBOARD_MODE", mode)
        try:
            status = main(list(args))
        except SystemExit as exit:  # argparse: --help and usage errors
            status = int(exit.code or 0)
        out, err = capsys.readouterr()
        return status, out, err

    return invoke


@pytest.mark.parametrize("group", ["groups", "projects", "members", "settings", "add-ons", "seats", "duo", "flags"])
def test_every_command_group_has_help(run, group: str) -> None:  # noqa: ANN001
    status, out, _ = run(group, "--help")
    assert status == 0 and "usage: switchboard" in out


def test_an_operator_sets_up_a_group_from_nothing(run) -> None:  # noqa: ANN001
    assert run("users", "create", "erin")[0] == 0
    assert run("groups", "create", "acme")[1].strip() == "gid://gitlab/Group/1"
    assert run("groups", "create", "acme/web", "--visibility", "internal")[0] == 0
    assert run("projects", "create", "acme/web/site")[1].strip() == "gid://gitlab/Project/1"
    assert run("members", "add", "erin", "--project", "acme/web/site", "--access-level", "maintainer")[0] == 0
    status, out, err = run("duo", "setup", "acme", mode="saas")
    assert status == 0, err
    assert out.splitlines() == ["enabled Duo features on acme", "bought duo_enterprise for group acme with 1 seat",
                                "assigned duo_enterprise seats to erin"]
    again = run("duo", "setup", "acme", mode="saas")[1]
    assert again.startswith("nothing to do: duo_enterprise is set up for group acme (1 of 1 seats")
    assert "acme" in run("add-ons", "list")[1] and "erin" in run("add-ons", "list")[1]
    assert run("settings", "set", "lock_duo_features_enabled", "true", "--group", "acme")[0] == 0
    status, _, err = run("settings", "set", "duo_features_enabled", "false", "--project", "acme/web/site")
    assert status == 1 and "locked by acme" in err and "--group acme" in err
    assert "inherited from acme, locked by acme" in run("settings", "show", "--project", "acme/web/site")[1]


@pytest.mark.parametrize(
    ("args", "mode", "says"),
    [
        (("duo", "setup", "acme"), "self_managed", "run `switchboard duo setup-instance`"),
        (("duo", "setup-instance"), "saas", "run `switchboard duo setup GROUP`"),
        (("duo", "setup", "gitlab-duo/child"), "saas", "run `switchboard duo setup gitlab-duo`"),
        (("seats", "assign", "mallory", "duo_pro", "--group", "gitlab-duo"), "saas", "not a member of gitlab-duo"),
        (("seats", "assign", "carol", "duo_pro"), "self_managed", "all 1 seats"),
        (("settings", "set", "experiment_features_enabled", "true", "--group", "gitlab-duo/child"), "saas", "top-level"),
        (("flags", "set", "ai_global_switch", "10"), "self_managed", "percentage_of_actors"),
        (("members", "add", "nobody", "--group", "gitlab-duo"), "self_managed", "switchboard users create nobody"),
    ],
)
def test_problems_say_what_is_wrong_and_how_to_fix_it(run, args: tuple[str, ...], mode: str, says: str) -> None:  # noqa: ANN001
    assert run("seed", mode=mode)[0] == 0
    if args[:2] == ("seats", "assign") and mode == "self_managed":
        assert run("add-ons", "purchase", "duo_pro", "--seats", "1")[0] == 0
    status, out, err = run(*args, mode=mode)
    assert status == 1 and says in err and len(err.strip().splitlines()) == 1, err


def test_flags_from_the_command_line(run) -> None:  # noqa: ANN001
    run("seed")
    assert "ai_global_switch                 on          (default)" in run("flags", "list")[1]
    assert "off" in run("flags", "disable", "ai_global_switch")[1]
    assert "actors User:2" in run("flags", "enable", "ai_global_switch", "--user", "alice")[1]
    assert "25% of actors" in run("flags", "set", "ai_model_switching", "25", "--key", "percentage_of_actors")[1]
    assert "(default)" in run("flags", "reset", "ai_global_switch")[1]


def test_tokens_list_and_revoke(run) -> None:  # noqa: ANN001
    seeded = json.loads(run("seed", "--json")[1])
    assert seeded["users"]["bob"]["token"]
    assert "active" in run("tokens", "list", "bob")[1]
    assert run("tokens", "revoke", "bob", "--all")[1].strip() == "revoked 1 token(s) of bob"
    assert "revoked" in run("tokens", "list", "bob")[1]
    assert run("tokens", "revoke", "bob")[0] == 1
