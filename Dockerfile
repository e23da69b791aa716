# Build: docker build -t rtpcast .
# Run:   docker run -p 5544:5544 -p 5005:5005/udp -p 5006:5006/udp \
#            -v "$(pwd)/video.mp4:/media/video.mp4:ro" rtpcast
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
COPY --from=build /src/target/release/rtpcast /usr/local/bin/rtpcast
RUN mkdir -p /media
VOLUME /media
EXPOSE 5544/tcp 5005/udp 5006/udp
ENTRYPOINT ["rtpcast"]
CMD ["/media"]
