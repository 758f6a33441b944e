/* The least any entrypoint that asks metadata can cost, in C on musl (static, 40 KB): connect,
 * one GET /2016-07-29/self/container, strstr for primary_ip, add NODE_NAME, execve. No options,
 * validation, retry, timeout or signal reset. request_floor.rs is the same in Rust with std;
 * the two differ by what a Rust std runtime and a larger binary cost to start.
 *
 *     request-floor-c 127.0.0.1:PORT /bin/true
 * Build: musl-gcc -static -Os -o request-floor-c request_floor.c */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 3) return 64;
    char host[64];
    strncpy(host, argv[1], sizeof host - 1);
    host[sizeof host - 1] = 0;
    char *colon = strrchr(host, ':');
    if (!colon) return 64;
    *colon = 0;
    struct sockaddr_in server = {.sin_family = AF_INET, .sin_port = htons(atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &server.sin_addr) != 1) return 64;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&server, sizeof server) < 0) {
        perror("request-floor-c: connect");
        return 127;
    }
    char request[256];
    int n = snprintf(request, sizeof request,
                     "GET /2016-07-29/self/container HTTP/1.1\r\nHost: %s\r\n"
                     "Accept: application/json\r\nConnection: close\r\n\r\n",
                     argv[1]);
    if (write(fd, request, n) != n) return 127;
    static char answer[16384];
    size_t len = 0;
    ssize_t got;
    while (len < sizeof answer - 1 && (got = read(fd, answer + len, sizeof answer - 1 - len)) > 0) len += got;
    answer[len] = 0;
    close(fd);
    char *ip = strstr(answer, "\"primary_ip\":\"");
    if (!ip) return 65;
    ip += strlen("\"primary_ip\":\"");
    char *end = strchr(ip, '"');
    if (!end) return 65;
    *end = 0;
    char node[128];
    snprintf(node, sizeof node, "NODE_NAME=hello@%s", ip);
    size_t count = 0;
    while (environ[count]) count++;
    char **envp = malloc((count + 2) * sizeof *envp);
    if (!envp) return 127;
    memcpy(envp, environ, count * sizeof *envp);
    envp[count] = node;
    envp[count + 1] = 0;
    execve(argv[2], argv + 2, envp);
    perror("request-floor-c: execve");
    return 127;
}
