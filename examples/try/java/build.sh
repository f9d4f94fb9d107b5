#!/bin/sh
# Build hello.jar from src/ with the JDK (javac + jar); Yunzhou's java stack runs it with `java -jar`.
set -eu
cd "$(dirname "$0")"
rm -rf classes && mkdir classes
javac --release 17 -d classes src/Hello.java
jar --create --file hello.jar --main-class Hello -C classes .
rm -rf classes
