# HMP console and commands
