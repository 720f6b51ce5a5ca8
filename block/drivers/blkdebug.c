/* driver: blkdebug (being written) */
