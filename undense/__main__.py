from undense.runtime.cli import main

main(prog_name="undense")
