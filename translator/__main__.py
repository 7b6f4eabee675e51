from translator.main import run

run()
