from nb2pipe.cli import run

run()
