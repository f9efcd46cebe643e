from eventkit.cli import main
from intake.bootstrap import build, runtime_for
from intake.settings import IntakeSettings

main(IntakeSettings, runtime_for, build)
