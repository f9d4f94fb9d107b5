<%@ page contentType="application/json; charset=UTF-8" %>{"app": "hello-tomcat", "message": "hello from a war", "server": "<%= application.getServerInfo() %>"}
