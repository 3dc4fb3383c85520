"""Code phi1 is handed (corpus files, teacher answers, model completions) is parsed the same whatever the
user's warning filters say, and without printing the compiler's warnings about it: Python 3.12 prints a
SyntaxWarning for every invalid escape sequence (`"\\d"` outside a raw string) in code it parses, which on a
real corpus would be thousands of lines over the progress bars; under `-W error` the same code raised
SyntaxError and was counted as code that does not parse."""

from __future__ import annotations

import json
import subprocess
import sys

# A regex written without a raw string: valid Python that the compiler warns about.
CODE = 'import re\n\n\ndef digits(text):\n    """The digits in `text`."""\n    return re.findall("\\d+", text)\n'
TESTS = 'assert digits("a1b22") == ["1", "22"]\nassert digits("\\d") == []\n'

PROBE = """
import json
from phi1.clean.detectors.ast_match import parse_quiet
from phi1.clean.twins import entry_arity
from phi1.curate.annotate import truncate_code
from phi1.evaluate.perturb.case import parse
from phi1.mutation.mutants import mutants
from phi1.synth.exercises import parse_exercise
from phi1.synth.textbook import check_section
from phi1.synth.verify import test_statements
from phi1.teacher.offline import edu_features

code, tests = json.loads(input())
fence = "`" * 3
answer = f"{fence}python\\n{code}{fence}\\n{fence}python\\n{tests}{fence}\\n"
exercise = parse_exercise(answer)
print(json.dumps({
    "edu_features": edu_features(code)["parses"],
    "parse_exercise": getattr(exercise, "entry_point", exercise),
    "test_statements": len(test_statements(tests)),
    "check_section": check_section("Prose.\\n\\n" + answer)[0],
    "mutants": len(mutants(code)) > 0,
    "perturb": parse(code) is not None,
    "entry_arity": entry_arity(code, "digits"),
    "parse_quiet": parse_quiet(code) is not None,
    "truncate_code": truncate_code(code + "\\n# padding\\n" * 20, len(code) + 5) == code,
}))
"""


def test_code_with_invalid_escapes_parses_silently_under_any_warning_filter(cli_env):
    # -W error: every warning raised. Before, each parse above raised SyntaxError on this code; under
    # Python 3.12's default filters each printed a SyntaxWarning instead.
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", PROBE],
        input=json.dumps([CODE, TESTS]),
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert json.loads(proc.stdout) == {
        "edu_features": 1.0,
        "parse_exercise": "digits",
        "test_statements": 2,
        "check_section": None,
        "mutants": True,
        "perturb": True,
        "entry_arity": 1,
        "parse_quiet": True,
        "truncate_code": True,
    }
