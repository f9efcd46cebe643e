from eventkit.cli import main
from reporting.app import build, runtime_for
from reporting.settings import ReportingSettings

main(ReportingSettings, runtime_for, build)
