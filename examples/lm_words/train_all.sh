#!/bin/sh
# Trains the three neural language models of the comparison on the word-level text that
# make_data.py writes (DATA, default /tmp/lm_words/words.txt) into RUNS (default /tmp/lm_words/runs).
# EXTRA is appended to every command (the tests shrink the runs with it); RNNDSL names the CLI.
# Each runs alone; times in the README were measured while other jobs shared the 2 cores.
set -e
DATA=${DATA:-/tmp/lm_words/words.txt}
RUNS=${RUNS:-/tmp/lm_words/runs}
rnndsl=${RNNDSL:-rnndsl}
common="--data $DATA --level word --overwrite --quiet --set optimizer=adam --set batch=32 --set epochs=5"
$rnndsl train specs/ffnn_lm.yaml --out $RUNS/ffnn $common --set N=5 --set D=32 --set H=128 --set lr=0.002 --set bptt=50 $EXTRA
$rnndsl train specs/rnn_lm.yaml --out $RUNS/rnn $common --set H=128 --set lr=0.003 --set bptt=20 $EXTRA
$rnndsl train specs/lstm_dropout.yaml --out $RUNS/lstm $common --set E=64 --set H=128 --set lr=0.003 --set bptt=35 $EXTRA
