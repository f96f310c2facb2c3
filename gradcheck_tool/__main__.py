from gradcheck_tool.entry import run

run()
