import io

from workbench.notebook_helpers import RepoRelativeStream, repo_root, shown


def test_repo_relative_stream_cuts_the_repository_root():
    buf = io.StringIO()
    stream = RepoRelativeStream(buf, "/home/me/repo/")
    stream.write("resumed from /home/me/repo/runs/x/checkpoints/step-1 at step 1\n")
    stream.write("elsewhere: /home/me/other/file\n")
    stream.flush()  # delegated to the wrapped stream
    assert buf.getvalue() == "resumed from runs/x/checkpoints/step-1 at step 1\nelsewhere: /home/me/other/file\n"


def test_shown_is_relative_to_the_repository_root_inside_it():
    assert shown(repo_root() / "runs" / "x") == "runs/x"
    assert shown("/somewhere/else") == "/somewhere/else"
