from colisten.cli import main

main()
