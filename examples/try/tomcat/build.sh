#!/bin/sh
# Package webapp/ as hello.war (a JSP that Tomcat compiles when it is first asked for); needs only `jar`.
set -eu
cd "$(dirname "$0")"
jar --create --file hello.war -C webapp .
