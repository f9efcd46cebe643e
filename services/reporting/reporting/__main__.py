from eventkit.cli import main
from reporting.bootstrap import build, runtime_for
from reporting.settings import ReportingSettings

main(ReportingSettings, runtime_for, build)
