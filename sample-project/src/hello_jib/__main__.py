from hello_jib import main

main()
