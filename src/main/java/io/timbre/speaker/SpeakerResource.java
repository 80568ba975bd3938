package io.timbre.speaker;

import io.timbre.account.CurrentUser;
import io.timbre.api.ApiProblem;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.DELETE;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import org.eclipse.microprofile.openapi.annotations.Operation;
import org.jboss.resteasy.reactive.RestForm;
import org.jboss.resteasy.reactive.multipart.FileUpload;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.file.Files;
import java.time.Instant;
import java.util.List;
import java.util.UUID;

@Path("/v1/speakers")
@Produces(MediaType.APPLICATION_JSON)
public class SpeakerResource {

    public record SpeakerResponse(UUID id, String name, String promptText, double promptSeconds, boolean rebuildable,
                                  long featureBytes, String pack, Instant createdAt) {
        static SpeakerResponse of(Speaker s) {
            int samples = s.promptAudioBytes / 4;
            return new SpeakerResponse(s.id, s.name, s.promptText, samples / (double) s.promptSampleRate, samples > 0,
                    s.featureBytes == null ? 0 : s.featureBytes, s.packName + "@" + s.packVersion, s.createdAt);
        }
    }

    /** The model family (cosyvoice2, cosyvoice3) of the features exported or imported. */
    public static final String FAMILY_HEADER = "X-Timbre-Pack-Family";
    /** The pack (name@version) that made the features exported or holds the imported ones. */
    public static final String PACK_HEADER = "X-Timbre-Pack";

    private final SpeakerService speakers;
    private final CurrentUser user;

    SpeakerResource(SpeakerService speakers, CurrentUser user) {
        this.speakers = speakers;
        this.user = user;
    }

    @POST
    @Consumes(MediaType.MULTIPART_FORM_DATA)
    @Operation(summary = "Register a speaker from a 3-30 s recording (WAV, MP3, M4A, Ogg, FLAC or WebM) and its transcript; features are computed once, here")
    public Response register(@RestForm String name, @RestForm String promptText, @RestForm("audio") FileUpload audio) {
        long owner = user.requireUserId();
        Speaker s = speakers.register(owner, name, promptText, bytes(audio, "audio",
                "Attach the recording as the 'audio' part (3 to 30 seconds of WAV, MP3, M4A, Ogg, FLAC or WebM)."));
        return Response.created(URI.create("/v1/speakers/" + s.id)).entity(SpeakerResponse.of(s)).build();
    }

    @GET
    @Operation(summary = "Your speakers")
    public List<SpeakerResponse> list() {
        return speakers.list(user.requireUserId()).stream().map(SpeakerResponse::of).toList();
    }

    @GET
    @Path("/{id}")
    @Operation(summary = "One of your speakers")
    public SpeakerResponse get(@PathParam("id") UUID id) {
        return SpeakerResponse.of(speakers.get(user.requireUserId(), id));
    }

    @DELETE
    @Path("/{id}")
    @Operation(summary = "Delete a speaker: its row and feature file; it is no longer anyone's current speaker")
    public Response delete(@PathParam("id") UUID id) {
        speakers.delete(user.requireUserId(), id);
        return Response.noContent().build();
    }

    @GET
    @Path("/{id}/features")
    @Produces(MediaType.APPLICATION_OCTET_STREAM)
    @Operation(summary = "The speaker's features as a CosyVoice spk2info entry (torch.save format)")
    public Response features(@PathParam("id") UUID id) {
        byte[] file = speakers.exportFeatures(user.requireUserId(), id);
        return Response.ok(file).header("Content-Disposition", "attachment; filename=\"" + id + ".pt\"")
                .header(FAMILY_HEADER, speakers.packFamily().id).header(PACK_HEADER, speakers.packKey()).build();
    }

    @POST
    @Path("/import")
    @Consumes(MediaType.MULTIPART_FORM_DATA)
    @Operation(summary = "Import a CosyVoice spk2info.pt (speaker id -> spk2info entry): one speaker per entry")
    public Response importSpk2info(@RestForm("file") FileUpload file, @RestForm("name") String name,
                                   @RestForm("family") String family) {
        long owner = user.requireUserId();
        if (file != null && file.size() > speakers.importBytesLimit()) {   // refused before it is read into memory
            throw SpeakerService.importTooLarge(file.size(), speakers.importBytesLimit());
        }
        List<SpeakerResponse> created = speakers.importSpk2info(owner, bytes(file, "file",
                "Attach a CosyVoice spk2info.pt as the 'file' part."), singleName(name, file),
                io.timbre.api.TextInputs.requireNoNul("family", family)).stream().map(SpeakerResponse::of).toList();
        return Response.status(201).entity(created).header(FAMILY_HEADER, speakers.packFamily().id)
                .header(PACK_HEADER, speakers.packKey()).build();
    }

    /** A single exported entry's speaker name: the 'name' part, else the file name without its extension. */
    private static String singleName(String name, FileUpload file) {
        if (name != null && !name.isBlank()) {
            return name;
        }
        String f = file == null || file.fileName() == null ? "" : file.fileName();
        int dot = f.lastIndexOf('.');
        String stem = dot > 0 ? f.substring(0, dot) : f;
        return stem.isBlank() ? "imported" : stem;
    }

    /** The bytes of an uploaded part; 422 naming the part and how to send it when it is absent. */
    public static byte[] bytes(FileUpload upload, String part, String howToFix) {
        if (upload == null) {
            throw ApiProblem.unprocessable(part + "-missing", "Missing '" + part + "' part", howToFix);
        }
        try {
            return Files.readAllBytes(upload.uploadedFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
