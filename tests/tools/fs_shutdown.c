/* fs_shutdown MOUNTPOINT: shuts an ext4 filesystem down as a dying disk would: from then on every
 * write and fsync on it fails with EIO (EXT4_IOC_SHUTDOWN, the ioctl number XFS shares). For fault
 * tests only. */
#include <fcntl.h>
#include <linux/types.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define FS_IOC_SHUTDOWN        _IOR('X', 125, __u32)
#define FS_SHUTDOWN_NOLOGFLUSH 2

int main(int argc, char **argv)
{
    __u32 flags = FS_SHUTDOWN_NOLOGFLUSH;
    int fd;

    if (argc != 2) {
        fprintf(stderr, "usage: fs_shutdown MOUNTPOINT\n");
        return 2;
    }
    fd = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (fd < 0 || ioctl(fd, FS_IOC_SHUTDOWN, &flags) < 0) {
        perror(argv[1]);
        return 1;
    }
    close(fd);
    return 0;
}
