"""`dsv3 chat` under mpirun (issue 14): rank 0 reads the piped input and
broadcasts each line (and /load's file); every rank takes the same turns.

Usage: mpi_chat_test.py NP BTL [CHAT ARGS...]

A conversation of greedy and seeded sampled turns with /set, /save, /clear,
/load and a continued turn prints exactly what one process prints, and every
rank exits 0 at the end of the input. Environment as mpi_serve_test.py.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "server"))
import harness  # noqa: E402

MPI_RUN = os.environ.get("DSV3_MPI_RUN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi_run.sh"))


def chat(prefix, model, args, script):
    cmd = prefix + [os.path.abspath(harness.BIN), "-t", "1", "chat", "-m", model, "-q", "-n", "24", *args]
    r = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, "exit %d: %s\n%s" % (r.returncode, " ".join(cmd), r.stderr)
    return r.stdout


def main():
    np, btl, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    model = harness.chat_model()
    saved = os.path.join(harness.OUT, "mpi_chat_%s_%s_%d.json" % (np, btl, os.getpid()))
    script = "\n".join(["hello there", "what is two and two?", "/set temperature 0.9", "/set seed 11",
                        "tell me more", "/save " + saved, "/clear", "a fresh start", "/load " + saved,
                        "and after loading?", "/load /nonexistent/file.json", "last one"]) + "\n"
    one = chat([], model, args, script)
    many = chat([MPI_RUN, np, btl], model, args, script)
    assert one.count("saved ") == 1 and one.count("loaded ") == 1, one
    assert many == one, "differs from one process:\n--- one\n%s\n--- %s ranks\n%s" % (one, np, many)
    os.remove(saved)
    print("ok: %s ranks over %s%s: %d bytes of chat output (5 turns, greedy and seeded, /save, /load) identical "
          "to one process" % (np, btl, " (%s)" % " ".join(args) if args else "", len(one)))


if __name__ == "__main__":
    main()
