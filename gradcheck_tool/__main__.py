from gradcheck_tool.cli import main

main()
