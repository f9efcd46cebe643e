from eventkit.cli import main
from scheduling.bootstrap import build, runtime_for
from scheduling.settings import SchedulingSettings

main(SchedulingSettings, runtime_for, build)
