from eventkit.cli import main
from intake.bootstrap import build, reindex_search, runtime_for
from intake.settings import IntakeSettings

main(IntakeSettings, runtime_for, build, maintenance={"reindex-search": reindex_search})
