from eventkit.cli import main
from scheduling.app import build, runtime_for
from scheduling.settings import SchedulingSettings

main(SchedulingSettings, runtime_for, build)
