import sys

from reporting.cli import main

main(sys.argv)
