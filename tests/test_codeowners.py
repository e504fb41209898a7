"""CODEOWNERS: GitHub's lookup order, gitignore-like patterns, last match wins, and who can be asked to review."""

from __future__ import annotations

import pytest

from worker.github.codeowners import CODEOWNERS_PATHS, Rule, owners_for, owners_of, parse, split_reviewers

# Shaped like the example in GitHub's "About code owners" page.
FILE = """\
# Lines starting with '#' are comments.

# The global owners, unless a later match takes precedence.
*       @global-owner1 @global-owner2

*.js    @js-owner #This is an inline comment.
*.go docs@example.com
*.txt @octo-org/octocats
/build/logs/ @doctocat
docs/*  docs@example.com
apps/ @octocat
/docs/ @doctocat
/scripts/ @doctocat @octocat
**/logs @octocat
/apps/ @octocat
/apps/github
/tools/ @octocat
/tools/github @doctocat
/content/**/*.md @octo-org/writers
"""


def test_the_file_is_looked_up_where_github_looks_in_that_order() -> None:
    assert CODEOWNERS_PATHS == (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")


@pytest.mark.parametrize(("path", "owners"), [
    pytest.param("README.md", ("@global-owner1", "@global-owner2"), id="global"),
    pytest.param("src/deep/x.py", ("@global-owner1", "@global-owner2"), id="global-nested"),
    pytest.param("app.js", ("@js-owner",), id="js-at-root"),
    pytest.param("src/web/app.js", ("@js-owner",), id="js-anywhere"),
    pytest.param("src/app.jsx", ("@global-owner1", "@global-owner2"), id="not-js"),
    pytest.param("main.go", ("docs@example.com",), id="email-owner"),
    pytest.param("notes.txt", ("@octo-org/octocats",), id="team-owner"),
    pytest.param("build/logs/today.log", ("@octocat",), id="logs-rule-is-later"),
    pytest.param("build/output.bin", ("@global-owner1", "@global-owner2"), id="build-not-logs"),
    pytest.param("docs/getting-started.md", ("@doctocat",), id="root-docs-later-rule"),
    pytest.param("docs/build-app/troubleshooting.md", ("@doctocat",), id="root-docs-nested"),
    pytest.param("sub/docs/guide.md", ("@global-owner1", "@global-owner2"), id="docs-star-is-anchored"),
    pytest.param("web/apps/main.py", ("@octocat",), id="apps-dir-anywhere"),
    pytest.param("apps/main.py", ("@octocat",), id="root-apps"),
    pytest.param("apps/github/main.py", (), id="no-owners-rule"),
    pytest.param("apps/github", (), id="no-owners-rule-exact"),
    pytest.param("apps/githubber/x.py", ("@octocat",), id="prefix-is-not-a-match"),
    pytest.param("scripts/deploy.sh", ("@doctocat", "@octocat"), id="two-owners"),
    pytest.param("scripts/logs/run.log", ("@octocat",), id="double-star-logs"),
    pytest.param("deeply/nested/logs/x.txt", ("@octocat",), id="double-star-logs-deep"),
    pytest.param("logs", ("@octocat",), id="double-star-logs-file"),
    pytest.param("tools/github", ("@doctocat",), id="later-narrower-rule"),
    pytest.param("tools/github/x.py", ("@doctocat",), id="later-narrower-rule-dir"),
    pytest.param("tools/other.py", ("@octocat",), id="earlier-wider-rule"),
    pytest.param("content/a.md", ("@octo-org/writers",), id="double-star-zero-dirs"),
    pytest.param("content/a/b/c.md", ("@octo-org/writers",), id="double-star-many-dirs"),
    pytest.param("content/a/b/c.txt", ("@octo-org/octocats",), id="double-star-other-ext"),
    pytest.param("x/content/a.md", ("@global-owner1", "@global-owner2"), id="anchored-double-star"),
    pytest.param("/app.js", ("@js-owner",), id="leading-slash-path"),
    pytest.param("./app.js", ("@js-owner",), id="dot-slash-path"),
])
def test_last_matching_rule_wins(path: str, owners: tuple[str, ...]) -> None:
    assert owners_of(parse(FILE), path) == owners


@pytest.mark.parametrize(("pattern", "matches", "misses"), [
    pytest.param("*", ["a", "a/b", "a/b/c.txt", ".hidden"], [], id="everything"),
    pytest.param("*.js", ["a.js", "x/y/a.js", "dir.js/inner.txt"], ["a.jsx", "a.js.map", "js"], id="extension"),
    pytest.param("/build/logs/", ["build/logs/a.log", "build/logs/x/y.log"],
                 ["build/logs", "x/build/logs/a.log", "build/logsy/a"], id="anchored-directory"),
    pytest.param("docs/*", ["docs/a.md", "docs/.b"], ["docs", "docs/a/b.md", "x/docs/a/b.md"], id="direct-children"),
    pytest.param("/*", ["a", "a.md"], ["a/b"], id="root-files"),
    pytest.param("apps/", ["apps/a", "x/apps/a", "x/y/apps/a/b"], ["apps", "xapps/a", "apps.txt"], id="dir-anywhere"),
    pytest.param("**/logs", ["logs", "logs/a", "a/logs", "a/b/logs/c"], ["logsy", "a/logsy/b"], id="double-star"),
    pytest.param("/docs/**/*.md", ["docs/a.md", "docs/x/a.md", "docs/x/y/a.md"],
                 ["docs/a.txt", "x/docs/a.md", "docs.md"], id="double-star-middle"),
    pytest.param("foo/**", ["foo/a", "foo/a/b"], ["foo", "x/foo/a"], id="double-star-end"),
    pytest.param("**", ["a", "a/b"], [], id="double-star-alone"),
    pytest.param("foo", ["foo", "foo/a", "x/foo", "x/foo/a"], ["foo.txt", "xfoo"], id="name-anywhere"),
    pytest.param("/foo", ["foo", "foo/a"], ["x/foo"], id="name-at-root"),
    pytest.param("foo/bar", ["foo/bar", "foo/bar/baz"], ["x/foo/bar", "foo/bart"], id="slash-anchors"),
    pytest.param("foo/*/baz", ["foo/x/baz", "foo/x/baz/q"], ["foo/baz", "foo/x/y/baz"], id="star-segment"),
    pytest.param("f?o", ["foo", "x/fao"], ["fo", "fooo", "f/o"], id="question-mark"),
    pytest.param("\\#notes", ["#notes", "x/#notes"], ["notes"], id="escaped-hash"),
    pytest.param("f\\*o", ["f*o"], ["foo"], id="escaped-star"),
    pytest.param("my\\ file.txt", ["my file.txt"], ["my", "file.txt"], id="escaped-space"),
    pytest.param("a.b", ["a.b"], ["axb"], id="dot-is-literal"),
    pytest.param("README.md", ["README.md", "x/README.md"], ["readme.md"], id="case-sensitive"),
])
def test_pattern_forms(pattern: str, matches: list[str], misses: list[str]) -> None:
    rules = [Rule(pattern, ("@owner",), 1)]
    assert [path for path in matches if owners_of(rules, path) != ("@owner",)] == []
    assert [path for path in misses if owners_of(rules, path) != ()] == []


def test_parse_keeps_rules_in_order_with_their_lines() -> None:
    rules = parse(FILE)
    assert rules[0] == Rule("*", ("@global-owner1", "@global-owner2"), 4)
    assert rules[1] == Rule("*.js", ("@js-owner",), 6)  # the inline comment is not an owner
    assert Rule("/apps/github", (), 16) in rules
    assert [rule.line for rule in rules] == sorted(rule.line for rule in rules)
    assert len(rules) == 15


def test_parse_skips_lines_it_cannot_use() -> None:
    text = "\n".join([
        "  # indented comment",
        "\t",
        "!negated @octocat",  # GitHub does not support negation
        "*.[ch] @octocat",  # nor character ranges
        "src/ @octocat not-an-owner",  # an invalid owner: GitHub skips the line
        "lib/ @octocat @@double",
        "dangling\\",
        "/ @octocat",
        "good/ @octocat\t@org/team   ops@example.com",
        "\\#literal @hash-owner",
        "spaced\\ name @octocat # trailing comment @not-an-owner",
        "windows.txt @octocat\r",
    ])
    assert parse(text) == [
        Rule("good/", ("@octocat", "@org/team", "ops@example.com"), 9),
        Rule("\\#literal", ("@hash-owner",), 10),
        Rule("spaced\\ name", ("@octocat",), 11),
        Rule("windows.txt", ("@octocat",), 12),
    ]
    assert parse("") == [] and parse("# only a comment\n\n") == []


def test_owners_for_is_the_ordered_union_without_at_and_emails() -> None:
    rules = parse(FILE)
    paths = ["scripts/deploy.sh", "app.js", "main.go", "notes.txt", "scripts/run.sh", "apps/github/x", "README.md"]
    assert owners_for(rules, paths) == ("doctocat", "octocat", "js-owner", "octo-org/octocats", "global-owner1",
                                        "global-owner2")
    assert owners_for(rules, []) == ()
    assert owners_for(rules, ["main.go", "apps/github/x"]) == ()  # an email and no owners: nobody to request
    assert owners_for(rules, iter(["app.js"])) == ("js-owner",)


def test_owners_for_dedupes_logins_case_insensitively() -> None:
    rules = parse("a/ @Octocat\nb/ @octocat @Org/Team\nc/ @org/team\n")
    assert owners_for(rules, ["a/x", "b/x", "c/x"]) == ("Octocat", "Org/Team")


@pytest.mark.parametrize(("owners", "users", "teams"), [
    (["octocat", "octo-org/octocats", "doctocat", "other-org/writers"], ["octocat", "doctocat"],
     ["octocats", "writers"]),
    (["@octocat", "@octo-org/octocats"], ["octocat"], ["octocats"]),
    (["octocat", "OctoCat", "org/team", "other/team"], ["octocat"], ["team"]),
    ([], [], []),
])
def test_split_reviewers(owners: list[str], users: list[str], teams: list[str]) -> None:
    assert split_reviewers(owners) == (users, teams)


def test_split_reviewers_takes_owners_for_output() -> None:
    rules = parse(FILE)
    assert split_reviewers(owners_for(rules, ["notes.txt", "scripts/x", "content/a.md"])) == (
        ["doctocat", "octocat"], ["octocats", "writers"])
