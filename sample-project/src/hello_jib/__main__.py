from hello_jib.server import main

main()
