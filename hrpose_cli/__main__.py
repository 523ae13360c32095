from hrpose_cli.cli.app import main

main()
