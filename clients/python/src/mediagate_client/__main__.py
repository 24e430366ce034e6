from mediagate_client.cli import main

main()
